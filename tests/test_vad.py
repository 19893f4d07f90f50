import numpy as np
import soxr
import torch

from turnfusion.data.sources import speech as tts
from turnfusion.vad import VAD_RATE, speech_spans


def talk_with_gaps(rate: int) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Three eSpeak NG phrases with 1 s of silence around each, and where the phrases are (seconds)."""
    gap = np.zeros(rate, np.float32)
    parts, truth, t = [gap], [], 1.0
    for text in ("i went to the market yesterday", "and it was really nice", "we should go again next week"):
        said = soxr.resample(tts.speak(text, tts.Voice("en-us+m3")), tts.sample_rate(), rate).astype(np.float32)
        parts += [said, gap]
        truth.append((t, t + len(said) / rate))
        t += len(said) / rate + 1.0
    return np.concatenate(parts), truth


def test_the_spans_are_the_streaming_models_and_find_the_phrases():
    from silero_vad import get_speech_timestamps, load_silero_vad

    wave, truth = talk_with_gaps(VAD_RATE)
    spans = speech_spans(wave, VAD_RATE, 0.5)
    streaming = get_speech_timestamps(torch.from_numpy(wave), load_silero_vad(), threshold=0.5, sampling_rate=VAD_RATE)
    assert spans == [(s["start"] / VAD_RATE, s["end"] / VAD_RATE) for s in streaming]
    assert len(spans) == len(truth)
    for (start, end), (said_from, said_to) in zip(spans, truth, strict=True):
        assert abs(start - said_from) < 0.15 and abs(end - said_to) < 0.15


def test_other_rates_are_resampled_to_the_models_rate():
    wave, truth = talk_with_gaps(22050)
    spans = speech_spans(wave, 22050, 0.5)
    assert len(spans) == len(truth)
    for (start, end), (said_from, said_to) in zip(spans, truth, strict=True):
        assert abs(start - said_from) < 0.15 and abs(end - said_to) < 0.15

"""Speech activity with Silero VAD (the model ships inside the `silero-vad` wheel: no network, no torchaudio).

Used by `drop_silent` (how many seconds of a recording are speech) and, when `segment.trim_to_speech` is on,
by the one segment policy (`segment.segment_policy`) to cut an utterance's trailing non-speech.
"""

from __future__ import annotations

import functools

import numpy as np
import soxr

VAD_RATES = (8000, 16000)  # the rates Silero VAD runs at


@functools.cache
def _model():
    from silero_vad import load_silero_vad

    return load_silero_vad()


def speech_spans(samples: np.ndarray, sample_rate: int, threshold: float) -> list[tuple[float, float]]:
    """(start, end) seconds of each speech span of a mono signal; other rates are resampled to 16 kHz."""
    if sample_rate not in VAD_RATES:
        samples, sample_rate = soxr.resample(samples, sample_rate, 16000), 16000
    import torch  # here, not above: a deployment that never trims (onnx_backend) runs without torch
    from silero_vad import get_speech_timestamps

    with torch.inference_mode():
        spans = get_speech_timestamps(torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32)), _model(),
                                      threshold=threshold, sampling_rate=sample_rate)
    return [(s["start"] / sample_rate, s["end"] / sample_rate) for s in spans]


def speech_seconds(samples: np.ndarray, sample_rate: int, threshold: float) -> float:
    return float(sum(end - start for start, end in speech_spans(samples, sample_rate, threshold)))

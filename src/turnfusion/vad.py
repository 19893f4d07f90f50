# SPDX-License-Identifier: Apache-2.0
"""Speech activity with Silero VAD (the model ships inside the `silero-vad` wheel: no network, no torchaudio).

Used by `drop_silent` (how many seconds of a recording are speech) and, when `segment.trim_to_speech` is on,
by the one audio policy (`processing.segment_policy`) to cut an utterance's trailing non-speech.

It runs Silero's *sequence* ONNX model (`load_silero_vad(sequence=True)`): the same network and the same
per-frame probabilities as the streaming model, but one ONNX Runtime call per 16 s block instead of a Python
step per 32 ms frame: the VAD takes a sixth of the time, the `drop_silent` stage on the demo corpus 17 s instead
of 59 s (CI's fresh clone, 2 cores). The spans are the streaming model's (tests/test_vad.py).
"""

from __future__ import annotations

import functools

import numpy as np
import soxr

VAD_RATE = 16000  # the sequence model's rate: other rates are resampled to it


@functools.cache
def _model():
    from silero_vad import load_silero_vad

    return load_silero_vad(sequence=True, sampling_rate=VAD_RATE)


def speech_spans(samples: np.ndarray, sample_rate: int, threshold: float) -> list[tuple[float, float]]:
    """(start, end) seconds of each speech span of a mono signal."""
    from silero_vad.sequence_vad import get_speech_timestamps_sequence

    if sample_rate != VAD_RATE:
        samples = soxr.resample(samples, sample_rate, VAD_RATE)
    spans = get_speech_timestamps_sequence(np.ascontiguousarray(samples, dtype=np.float32), _model(),
                                           threshold=threshold, sampling_rate=VAD_RATE)
    return [(s["start"] / VAD_RATE, s["end"] / VAD_RATE) for s in spans]


def speech_seconds(samples: np.ndarray, sample_rate: int, threshold: float) -> float:
    return float(sum(end - start for start, end in speech_spans(samples, sample_rate, threshold)))

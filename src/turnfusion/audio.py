"""Reading, channel handling and resampling of recordings (soundfile + python-soxr, no torchaudio)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from turnfusion.schema import DataError


def read_audio(path: Path | str) -> tuple[np.ndarray, int]:
    """Read a recording as float32 of shape (samples, channels); DataError if it is missing or unreadable."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: recording not found")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: recording is an empty (zero-length) file")
    try:
        samples, sample_rate = sf.read(path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise DataError(f"{path}: unreadable audio ({exc})") from exc
    return samples, sample_rate


def select_channel(samples: np.ndarray, channel: int | None) -> np.ndarray:
    """Mono signal: the mean of all channels (`channel=None`) or one channel of a multi-channel recording."""
    if samples.ndim == 1:
        return samples
    if channel is None or samples.shape[1] == 1:
        return samples.mean(axis=1)
    if not 0 <= channel < samples.shape[1]:
        raise DataError(f"channel {channel} asked for, but the recording has {samples.shape[1]} channel(s)")
    return samples[:, channel]


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    if from_rate == to_rate:
        return samples.astype(np.float32, copy=False)
    return soxr.resample(samples, from_rate, to_rate).astype(np.float32)


def load_mono(path: Path | str, target_rate: int, channel: int | None = None) -> np.ndarray:
    """Read `path` as mono float32 at `target_rate` Hz."""
    samples, rate = read_audio(path)
    return resample(select_channel(samples, channel), rate, target_rate)


def rms_db(samples: np.ndarray) -> float:
    """Root-mean-square level in dB relative to full scale (-inf for an empty or all-zero signal)."""
    if samples.size == 0:
        return float("-inf")
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    return 20 * np.log10(rms) if rms > 0 else float("-inf")


def active_fraction(samples: np.ndarray, sample_rate: int, threshold_db: float, frame_s: float = 0.03) -> float:
    """Fraction of frames whose RMS level is above `threshold_db` (a simple energy VAD)."""
    mono = samples.mean(axis=1) if samples.ndim == 2 else samples
    frame = max(1, int(frame_s * sample_rate))
    n = len(mono) // frame
    if n == 0:
        return 0.0
    frames = mono[: n * frame].reshape(n, frame).astype(np.float64)
    level = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-20)
    return float(np.mean(level > threshold_db))

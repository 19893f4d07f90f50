# SPDX-License-Identifier: Apache-2.0
"""Reading, channel handling and resampling of recordings (soundfile + python-soxr, no torchaudio)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from turnfusion.errors import DataError, one_line
from turnfusion.names import named_file

RECORDING_SUFFIXES = (".flac", ".wav")  # what the download stage writes (flac), and plain wav folders


def recording_path(audio_dir: Path | str, video_id: str) -> Path:
    """The recording of `video_id` in `audio_dir`: `<video_id>.flac` or `.wav` (the first present; the flac
    path when neither is, so that reading it names the missing file). A `video_id` that is not a name is a
    DataError."""
    candidates = [named_file(audio_dir, video_id, suffix) for suffix in RECORDING_SUFFIXES]
    return next((p for p in candidates if p.exists()), candidates[0])


MIN_RATE, MAX_RATE = 1000, 384_000  # Hz a recording's header may claim; past these it is broken or hostile
MAX_CHANNELS = 8
MAX_RECORDING_S = 4 * 3600  # a longer recording is read whole into memory (one at a time): split it first


def read_audio(path: Path | str) -> tuple[np.ndarray, int]:
    """Read a recording as float32 of shape (samples, channels); DataError if it is missing or unreadable, or its
    header claims a sample rate, channel count or length that would make reading or resampling it a memory bomb
    (a 40 KB file whose header says 1 Hz resamples to gigabytes)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: recording not found")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: recording is an empty (zero-length) file")
    try:
        info = sf.info(path)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:  # TypeError: a headerless format (.raw)
        raise DataError(f"{path}: unreadable audio ({one_line(exc, 120)})") from None
    if not MIN_RATE <= info.samplerate <= MAX_RATE:
        raise DataError(f"{path}: header says {info.samplerate} Hz; a recording's rate is {MIN_RATE} to {MAX_RATE} Hz")
    if not 1 <= info.channels <= MAX_CHANNELS:
        raise DataError(f"{path}: header says {info.channels} channels; at most {MAX_CHANNELS} are read")
    if info.frames > MAX_RECORDING_S * info.samplerate:
        raise DataError(f"{path}: {info.frames / info.samplerate / 3600:.1f} h long; recordings of at most "
                        f"{MAX_RECORDING_S // 3600} h are read (split longer ones)")
    try:
        samples, sample_rate = sf.read(path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise DataError(f"{path}: unreadable audio ({one_line(exc, 120)})") from None
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


def read_resampled(path: Path | str, rate: int) -> np.ndarray:
    """A recording as float32 (samples, channels) at `rate` Hz; DataError if it is missing or unreadable."""
    samples, native = read_audio(path)
    return resample(samples, native, rate)


def keep_end(samples: np.ndarray, max_samples: int, hop: int = 1) -> np.ndarray:
    """The one length policy of training and prediction: keep the last `max_samples` (the end of an
    utterance carries the turn cues). With `hop` > 1 the cut falls a whole number of hops after the first sample
    (up to hop - 1 samples fewer kept): an audio front end whose frames are `hop` apart then reads the same frames
    in the kept end as in the whole utterance, so a live session can encode it in pieces from the utterance's start."""
    if len(samples) <= max_samples:
        return samples
    cut = -(-(len(samples) - max_samples) // hop) * hop
    return samples[cut:]


def telephone(wave: np.ndarray, rate: int, mu_law: bool = True) -> np.ndarray:
    """`wave` as a telephone line carries it: down to 8 kHz (soxr's anti-alias filter keeps the band below
    4 kHz), optionally 8-bit mu-law (G.711), and back to `rate`."""
    narrow = soxr.resample(np.asarray(wave, np.float32), rate, 8000)
    if mu_law:
        mu = 255.0
        coded = np.sign(narrow) * np.log1p(mu * np.minimum(np.abs(narrow), 1.0)) / np.log1p(mu)
        coded = np.round((coded + 1) / 2 * mu) / mu * 2 - 1  # 256 levels
        narrow = np.sign(coded) * np.expm1(np.abs(coded) * np.log1p(mu)) / mu
    return soxr.resample(narrow, 8000, rate).astype(np.float32)

"""Prosody of a waveform: a pitch track, the final-pitch/energy features of the calibration probes, and the
frame targets of the audio encoder's prosody pretraining."""

from __future__ import annotations

import numpy as np

FRAME_S = 0.02  # HuBERT's frame rate: 320 samples at 16 kHz


def f0_track(samples: np.ndarray, sample_rate: int, frame_s: float = 0.04, hop_s: float = 0.01,
             fmin: float = 60.0, fmax: float = 400.0, voicing: float = 0.3) -> np.ndarray:
    """Frame-wise F0 in Hz by normalised autocorrelation (NaN where unvoiced).

    Hand-written (about 15 lines) because the only job is a coarse final-pitch probe and librosa's pyin
    would add numba and seconds per utterance.
    """
    frame, hop = int(frame_s * sample_rate), int(hop_s * sample_rate)
    lag_min, lag_max = int(sample_rate / fmax), int(sample_rate / fmin)
    n = 1 + max(0, (len(samples) - frame) // hop)
    if len(samples) < frame:
        return np.full(0, np.nan)
    frames = np.lib.stride_tricks.sliding_window_view(samples, frame)[::hop][:n].astype(np.float64)
    frames = frames - frames.mean(axis=1, keepdims=True)
    spectrum = np.fft.rfft(frames, n=2 * frame, axis=1)
    ac = np.fft.irfft(np.abs(spectrum) ** 2, axis=1)[:, : lag_max + 1]
    energy = ac[:, :1] + 1e-12
    normalised = ac[:, lag_min:] / energy
    best = normalised.argmax(axis=1)
    f0 = sample_rate / (best + lag_min)
    f0[normalised[np.arange(n), best] < voicing] = np.nan
    return f0


def prosody_features(samples: np.ndarray, sample_rate: int, final_s: float = 0.35) -> np.ndarray:
    """[final F0 - median F0 (semitones), final F0 slope, final energy - mean energy (dB), final voiced seconds]."""
    f0 = f0_track(samples, sample_rate)
    hop = 0.01
    k = int(final_s / hop)
    semis = 12 * np.log2(f0 / np.nanmedian(f0)) if np.isfinite(f0).any() else np.full_like(f0, np.nan)
    semis[np.abs(semis) > 9] = np.nan  # octave errors of the tracker
    tail = semis[-k:]
    voiced = np.isfinite(tail)
    final_level = np.nanmedian(tail) if voiced.any() else 0.0
    slope = np.polyfit(np.flatnonzero(voiced) * hop, tail[voiced], 1)[0] if voiced.sum() >= 3 else 0.0
    frame = int(0.02 * sample_rate)
    m = len(samples) // frame
    level = 10 * np.log10(np.mean(samples[: m * frame].reshape(m, frame) ** 2, axis=1) + 1e-10) if m else np.zeros(1)
    energy_drop = level[-int(final_s / 0.02):].mean() - level.mean()
    return np.array([final_level, slope, energy_drop, voiced.sum() * hop], dtype=np.float64)


def frame_targets(wave: np.ndarray, sample_rate: int) -> np.ndarray:
    """(frames, 3): pitch in semitones re. the median (0 where unvoiced), voicing 0/1, energy in dB re. the mean."""
    f0 = f0_track(wave, sample_rate, hop_s=FRAME_S)
    voiced = np.isfinite(f0)
    semis = np.zeros_like(f0)
    if voiced.any():
        semis[voiced] = 12 * np.log2(f0[voiced] / np.median(f0[voiced]))
        voiced &= np.abs(semis) < 9  # octave errors of the tracker
        semis[~voiced] = 0
    frame = int(FRAME_S * sample_rate)
    n = len(f0)
    energy = np.array([10 * np.log10(np.mean(wave[i * frame: i * frame + 2 * frame] ** 2) + 1e-10) for i in range(n)])
    energy = (energy - energy.mean()) / 10
    return np.stack([semis / 6, voiced.astype(np.float64), energy], axis=1).astype(np.float32)

"""Prosody of a waveform: a pitch track, the final-pitch/energy features of the calibration probes, and the
frame targets of the audio encoder's prosody pretraining."""

from __future__ import annotations

import numpy as np

FRAME_S = 0.02  # HuBERT's frame rate: 320 samples at 16 kHz


def f0_track(samples: np.ndarray, sample_rate: int, frame_s: float = 0.04, hop_s: float = 0.01,
                   fmin: float = 60.0, fmax: float = 400.0) -> np.ndarray:
    """Frame-wise F0 in Hz from Praat's autocorrelation tracker (parselmouth, the phonetics standard), NaN where
    unvoiced, on frames of `frame_s` every `hop_s` (frame i centred at i * hop_s + frame_s / 2).

    It replaced a hand-written autocorrelation tracker: on the demo corpus both follow the generator's final
    pitch equally well (`bench/pitch_trackers.py`), and Praat's is maintained, faster and the field's reference.
    """
    import parselmouth

    n = 1 + max(0, (len(samples) - int(frame_s * sample_rate)) // int(hop_s * sample_rate))
    if len(samples) < int(frame_s * sample_rate):
        return np.full(0, np.nan)
    pitch = parselmouth.Sound(samples.astype(np.float64), sample_rate).to_pitch_ac(
        time_step=hop_s, pitch_floor=fmin, pitch_ceiling=fmax)
    times, f0 = pitch.xs(), pitch.selected_array["frequency"]
    centres = np.arange(n) * hop_s + frame_s / 2
    # the nearest Praat frame (its frames are centred in the signal, so they are offset from ours)
    right = np.clip(np.searchsorted(times, centres), 0, max(len(times) - 1, 0))
    left = np.clip(right - 1, 0, None)
    nearest = np.where(np.abs(times[left] - centres) < np.abs(times[right] - centres), left, right) if len(times) \
        else right
    out = np.full(n, np.nan)
    if len(times):
        close = np.abs(times[nearest] - centres) <= hop_s
        out[close] = f0[nearest[close]]
    out[out == 0] = np.nan
    return out


def relative_semitones(f0: np.ndarray) -> np.ndarray:
    """Semitones re. the track's median F0; NaN where unvoiced or beyond 9 semitones (octave errors)."""
    semis = 12 * np.log2(f0 / np.nanmedian(f0)) if np.isfinite(f0).any() else np.full_like(f0, np.nan)
    semis[np.abs(semis) > 9] = np.nan
    return semis


def final_semitones(f0: np.ndarray, hop_s: float = 0.01, final_s: float = 0.35) -> float:
    """Median pitch of the last `final_s` seconds in semitones re. the utterance's median (NaN: none voiced)."""
    tail = relative_semitones(f0)[-int(final_s / hop_s):]
    return float(np.nanmedian(tail)) if np.isfinite(tail).any() else float("nan")


def prosody_features(samples: np.ndarray, sample_rate: int, final_s: float = 0.35) -> np.ndarray:
    """[final F0 - median F0 (semitones), final F0 slope, final energy - mean energy (dB), final voiced seconds]."""
    f0 = f0_track(samples, sample_rate)
    hop = 0.01
    k = int(final_s / hop)
    tail = relative_semitones(f0)[-k:]
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

"""What the sources that speak share (the demo corpus and the MM-F2F rehearsal): two eSpeak NG voices per
conversation, clips trimmed to their sound, noise at a given SNR, and one fresh process per conversation."""

from __future__ import annotations

import numpy as np

from turnfusion.data.sources import speech
from turnfusion.training.forked import fork_pool

VOICE_VARIANTS = ["m1", "m2", "m3", "m4", "m5", "m7", "f1", "f2", "f3", "f4", "f5"]


def pick_voices(rng: np.random.Generator, language: str = "en-us") -> list[speech.Voice]:
    variants = rng.choice(VOICE_VARIANTS, size=2, replace=False)
    return [speech.Voice(f"{language}+{v}", pitch=int(rng.integers(30, 71)), rate=int(rng.integers(150, 191)))
            for v in variants]


def trim_silence(samples: np.ndarray, threshold: float = 1e-3) -> np.ndarray:
    voiced = np.flatnonzero(np.abs(samples) > threshold)
    return samples[voiced[0]: voiced[-1] + 1] if len(voiced) else samples


def add_noise(audio: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Add white noise at `snr_db` relative to the RMS of the non-silent part of `audio`."""
    active = np.abs(audio) > 1e-3
    speech_rms = np.sqrt(np.mean(audio[active] ** 2)) if active.any() else 1e-3
    noise_rms = speech_rms / (10 ** (snr_db / 20))
    return audio + rng.normal(0, noise_rms, size=audio.shape).astype(np.float32)


def map_in_fresh_processes(function, jobs: list, workers: int) -> list:
    """Run each job in a freshly forked process, `workers` at a time.

    eSpeak NG carries waveform state from one utterance to the next, so one process per conversation
    keeps each conversation independent of which others were synthesized before it in the same worker. A child is
    fresh only if this process has not spoken: forked, it inherits the engine and its state.
    """
    with fork_pool(workers, fresh=True) as pool:
        return pool.starmap(function, jobs, chunksize=1)

import dataclasses

import numpy as np
import pytest
import torch
from conftest import params_config
from pipeline import AUDIO_CFG

from turnfusion.config import PretrainAudioConfig
from turnfusion.training.encoders import build_audio_encoder
from turnfusion.training.pretrain_audio import contour_summary, pretrain_prosody


def targets(pitch: list[float], voiced: list[float], energy: list[float]) -> torch.Tensor:
    return torch.tensor(np.stack([pitch, voiced, energy], axis=1), dtype=torch.float32)


def test_the_summary_bins_the_last_frames_oldest_first_and_ignores_unvoiced_pitch():
    n = 24
    pitch = [-1.0] * 12 + [1.0] * 12
    voiced = [1.0] * n
    voiced[-1], pitch[-1] = 0.0, 5.0  # an unvoiced frame's pitch must not count
    summary = contour_summary(targets(pitch, voiced, [0.5] * n), span_frames=24, bins=4).view(4, 3)
    assert summary[:, 0].tolist() == pytest.approx([-1.0, -1.0, 1.0, 1.0])
    assert summary[:, 1].tolist() == pytest.approx([1.0, 1.0, 1.0, 5 / 6])
    assert summary[:, 2].tolist() == pytest.approx([0.5] * 4)


def test_a_segment_shorter_than_the_span_leaves_its_first_bins_empty():
    summary = contour_summary(targets([2.0] * 6, [1.0] * 6, [0.3] * 6), span_frames=24, bins=4).view(4, 3)
    assert summary[:3].abs().sum() == 0  # before the segment's start: no pitch, no voicing, no energy
    assert summary[3].tolist() == pytest.approx([2.0, 1.0, 0.3])


def glide(seconds: float, rate: int, start_hz: float, end_hz: float) -> np.ndarray:
    """A harmonic tone whose pitch glides from start_hz to end_hz over its last half."""
    t = np.arange(int(seconds * rate)) / rate
    f = np.where(t < seconds / 2, start_hz, start_hz + (end_hz - start_hz) * (t - seconds / 2) / (seconds / 2))
    phase = 2 * np.pi * np.cumsum(f) / rate
    return (0.2 * sum(np.sin(k * phase) / k for k in (1, 2, 3))).astype(np.float32)


def test_pretraining_with_the_summary_learns_to_predict_the_final_contour():
    rate = 16000
    waves = [glide(1.0, rate, 180, 180 * (1.3 if k % 2 else 0.75)) for k in range(16)]
    cfg = dataclasses.replace(params_config(PretrainAudioConfig), epochs=6, batch_size=8, lr=3e-3, crop_s=1.0,
                              summary_weight=1.0, summary_s=0.6, device="cpu")
    torch.manual_seed(0)
    history = pretrain_prosody(build_audio_encoder("config", AUDIO_CFG), waves, rate, cfg, last_k=5,
                               progress=False)
    assert history[-1]["summary_loss"] < 0.5 * history[0]["summary_loss"]
    off = pretrain_prosody(build_audio_encoder("config", AUDIO_CFG), waves, rate,
                           dataclasses.replace(cfg, summary_weight=0.0, epochs=1), progress=False)
    assert "summary_loss" not in off[0]

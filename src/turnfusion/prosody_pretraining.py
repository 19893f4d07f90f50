"""Prosody pretraining of an audio encoder built from config, for the offline default.

No pretrained DistilHuBERT can be downloaded here, and a randomly initialised frozen encoder carries
no prosody. So the encoder learns, frame by frame, to predict signal-derived targets: pitch in
semitones relative to the utterance's median, voicing, and energy. The targets come from the audio
alone (no labels), so the encoder learns where the pitch goes, and the turn-taking model on top
learns what that means.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from turnfusion.device import pick_device, seed_everything
from turnfusion.features import encode_waveforms
from turnfusion.probes import f0_track

log = logging.getLogger(__name__)
FRAME_S = 0.02  # HuBERT's frame rate: 320 samples at 16 kHz


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


def _crop(wave: np.ndarray, samples: int) -> np.ndarray:
    return wave[-samples:]


def pretrain_prosody(encoder, waves: list[np.ndarray], sample_rate: int, epochs: int, batch_size: int, lr: float,
                     crop_s: float, seed: int, device: str = "auto", progress: bool = True) -> list[dict]:
    """Train `encoder` (a HubertModel) in place on the last `crop_s` seconds of each waveform."""
    generator = seed_everything(seed)
    dev = pick_device(device)
    crop = int(crop_s * sample_rate)
    waves = [_crop(w, crop) for w in waves]
    targets = [torch.from_numpy(frame_targets(w, sample_rate)) for w in waves]
    head = nn.Linear(encoder.config.hidden_size, 3)
    encoder.to(dev).train()
    head.to(dev)
    optimizer = torch.optim.AdamW(list(encoder.parameters()) + list(head.parameters()), lr=lr, weight_decay=0.01)
    history = []
    for epoch in range(epochs):
        order = torch.randperm(len(waves), generator=generator).tolist()
        total, count = 0.0, 0
        for start in tqdm(range(0, len(order), batch_size), desc=f"prosody pretraining {epoch + 1}/{epochs}",
                          disable=not progress):
            rows = order[start: start + batch_size]
            hidden, mask = encode_waveforms(encoder, [waves[i] for i in rows])
            pred = head(hidden)
            target = torch.zeros_like(pred)
            valid = torch.zeros(mask.shape, dtype=torch.bool, device=dev)
            for k, i in enumerate(rows):
                n = min(int(mask[k].sum()), len(targets[i]))
                target[k, :n] = targets[i][:n].to(dev)
                valid[k, :n] = True
            voiced = valid & (target[..., 1] > 0.5)
            loss = (F.mse_loss(pred[..., 0][voiced], target[..., 0][voiced]) if voiced.any() else 0.0) \
                + F.binary_cross_entropy_with_logits(pred[..., 1][valid], target[..., 1][valid]) \
                + F.mse_loss(pred[..., 2][valid], target[..., 2][valid])
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(encoder.parameters(), 1.0)
            optimizer.step()
            total, count = total + loss.item() * len(rows), count + len(rows)
        history.append({"epoch": epoch + 1, "loss": total / count})
        log.info("prosody pretraining epoch %d: loss %.4f", epoch + 1, total / count)
    encoder.eval()
    return history

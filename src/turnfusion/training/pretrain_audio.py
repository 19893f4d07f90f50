"""Stage `pretrain_audio`: prosody pretraining of an audio encoder built from config, for the offline default.

No pretrained DistilHuBERT can be downloaded here, and a randomly initialised frozen encoder carries
no prosody. So the encoder learns, frame by frame, to predict signal-derived targets: pitch in
semitones relative to the utterance's median, voicing, and energy. The targets come from the audio
alone (no labels), so the encoder learns where the pitch goes, and the turn-taking model on top
learns what that means.

The turn-taking model reads the encoder through one vector, the mean of the last `model.last_k` frames
(`audio_pooling: last_k`). Frame targets alone do not make that vector describe the utterance's final
contour, so with `summary_weight` > 0 a second head also predicts, from that same pooled vector, the frame
targets of the last `summary_s` seconds averaged into `SUMMARY_BINS` bins (`contour_summary`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from turnfusion.audio import keep_end
from turnfusion.models.encoding import encode_padded
from turnfusion.models.pooling import Pooling
from turnfusion.training.encoders import build_audio_encoder
from turnfusion.training.loop import index_batches, optimizer_step, pick_device, seed_everything
from turnfusion.training.prosody import FRAME_S, frame_targets

if TYPE_CHECKING:
    from transformers import HubertModel

    from turnfusion.config import PretrainAudioConfig
    from turnfusion.data.stores import SegmentStore

log = logging.getLogger(__name__)
SUMMARY_BINS = 12


def contour_summary(targets: torch.Tensor, span_frames: int, bins: int = SUMMARY_BINS) -> torch.Tensor:
    """(bins * 3,): the last `span_frames` of `frame_targets` (frames, 3) in `bins` equal bins, oldest first;
    per bin the mean pitch of its voiced frames, its voiced share and its mean energy. Bins before the
    segment's start, and the pitch of a bin with no voiced frame, are 0."""
    width = max(1, span_frames // bins)
    tail = targets[-width * bins:]
    padded = torch.zeros(width * bins, 3, dtype=targets.dtype)
    present = torch.zeros(width * bins, dtype=torch.bool)
    padded[width * bins - len(tail):], present[width * bins - len(tail):] = tail, True
    padded, present = padded.view(bins, width, 3), present.view(bins, width)
    voiced = present & (padded[..., 1] > 0.5)
    pitch = (padded[..., 0] * voiced).sum(1) / voiced.sum(1).clamp(min=1)
    share = voiced.sum(1) / width
    energy = (padded[..., 2] * present).sum(1) / present.sum(1).clamp(min=1)
    return torch.stack([pitch, share, energy], dim=1).flatten()


def pretrain_prosody(encoder, waves: Sequence[np.ndarray], sample_rate: int, cfg: PretrainAudioConfig,
                     last_k: int = 10, progress: bool = True) -> list[dict]:
    """Train `encoder` (a HubertModel) in place on the last `cfg.crop_s` seconds of each waveform. `waves` is
    read when a batch needs it (the segment store's rows: never all in memory). `last_k`: the frames the
    turn-taking model pools, which the contour summary is predicted from."""
    generator = seed_everything(cfg.seed)
    dev = pick_device(cfg.device)
    crop = int(cfg.crop_s * sample_rate)
    targets = [torch.from_numpy(frame_targets(keep_end(w, crop), sample_rate))
               for w in tqdm(waves, desc="prosody targets", disable=not progress)]
    head = nn.Linear(encoder.config.hidden_size, 3)
    parameters = list(encoder.parameters()) + list(head.parameters())
    if cfg.summary_weight > 0:
        span = int(round(cfg.summary_s / FRAME_S))
        summaries = torch.stack([contour_summary(t, span) for t in targets])
        summary_head = nn.Linear(encoder.config.hidden_size, summaries.shape[1]).to(dev)
        pool = Pooling("last_k", encoder.config.hidden_size, last_k)
        parameters += list(summary_head.parameters())
    encoder.to(dev).train()
    head.to(dev)
    optimizer = torch.optim.AdamW(parameters, lr=cfg.lr, weight_decay=0.01)
    history = []
    for epoch in range(cfg.epochs):
        total, summary_total, count = 0.0, 0.0, 0
        batches = list(index_batches(len(waves), cfg.batch_size, generator))
        for rows in tqdm(batches, desc=f"prosody pretraining {epoch + 1}/{cfg.epochs}", disable=not progress):
            hidden, mask = encode_padded(encoder, [keep_end(waves[i], crop) for i in rows])
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
            if cfg.summary_weight > 0:
                summary_loss = F.mse_loss(summary_head(pool(hidden, mask)), summaries[list(rows)].to(dev))
                loss = loss + cfg.summary_weight * summary_loss
                summary_total += summary_loss.item() * len(rows)
            optimizer_step(optimizer, loss, encoder.parameters())
            total, count = total + loss.item() * len(rows), count + len(rows)
        history.append({"epoch": epoch + 1, "loss": total / count,
                        **({"summary_loss": summary_total / count} if cfg.summary_weight > 0 else {})})
        log.info("prosody pretraining epoch %d: %s", epoch + 1, history[-1])
    encoder.eval()
    return history


def pretrain_audio_encoder(store: SegmentStore, audio_config: dict, cfg: PretrainAudioConfig,
                           last_k: int = 10) -> tuple[HubertModel, dict, list[dict]]:
    """The pretrain_audio stage: a HubertModel from `audio_config` sizes, prosody-pretrained on the training
    split's segments (`last_k`: `model.last_k`, see `pretrain_prosody`). Returns (encoder, report, per-epoch
    history)."""
    seed_everything(cfg.seed)  # the encoder's initial weights
    encoder = build_audio_encoder("config", audio_config)
    rows = store.index.index[store.index.split == "train"]
    history = pretrain_prosody(encoder, store.waveforms(rows), store.sample_rate, cfg, last_k)
    return encoder, {"segments": len(rows), "final_loss": round(history[-1]["loss"], 4)}, history

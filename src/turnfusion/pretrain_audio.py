"""Stage `pretrain_audio`: prosody pretraining of an audio encoder built from config, for the offline default.

No pretrained DistilHuBERT can be downloaded here, and a randomly initialised frozen encoder carries
no prosody. So the encoder learns, frame by frame, to predict signal-derived targets: pitch in
semitones relative to the utterance's median, voicing, and energy. The targets come from the audio
alone (no labels), so the encoder learns where the pitch goes, and the turn-taking model on top
learns what that means.
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
from turnfusion.encoders import build_audio_encoder
from turnfusion.loop import index_batches, optimizer_step, pick_device, seed_everything
from turnfusion.models.encoding import encode_padded
from turnfusion.prosody import frame_targets

if TYPE_CHECKING:
    from transformers import HubertModel

    from turnfusion.config import PretrainAudioConfig
    from turnfusion.segment import SegmentStore

log = logging.getLogger(__name__)


def pretrain_prosody(encoder, waves: Sequence[np.ndarray], sample_rate: int, cfg: PretrainAudioConfig,
                     progress: bool = True) -> list[dict]:
    """Train `encoder` (a HubertModel) in place on the last `cfg.crop_s` seconds of each waveform. `waves` is
    read when a batch needs it (the segment store's rows: never all in memory)."""
    generator = seed_everything(cfg.seed)
    dev = pick_device(cfg.device)
    crop = int(cfg.crop_s * sample_rate)
    targets = [torch.from_numpy(frame_targets(keep_end(w, crop), sample_rate))
               for w in tqdm(waves, desc="prosody targets", disable=not progress)]
    head = nn.Linear(encoder.config.hidden_size, 3)
    encoder.to(dev).train()
    head.to(dev)
    optimizer = torch.optim.AdamW(list(encoder.parameters()) + list(head.parameters()), lr=cfg.lr, weight_decay=0.01)
    history = []
    for epoch in range(cfg.epochs):
        total, count = 0.0, 0
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
            optimizer_step(optimizer, loss, encoder.parameters())
            total, count = total + loss.item() * len(rows), count + len(rows)
        history.append({"epoch": epoch + 1, "loss": total / count})
        log.info("prosody pretraining epoch %d: loss %.4f", epoch + 1, total / count)
    encoder.eval()
    return history


def pretrain_audio_encoder(store: SegmentStore, audio_config: dict,
                           cfg: PretrainAudioConfig) -> tuple[HubertModel, dict, list[dict]]:
    """The pretrain_audio stage: a HubertModel from `audio_config` sizes, prosody-pretrained on the training
    split's segments. Returns (encoder, report, per-epoch history)."""
    seed_everything(cfg.seed)  # the encoder's initial weights
    encoder = build_audio_encoder("config", audio_config)
    rows = store.index.index[store.index.split == "train"]
    history = pretrain_prosody(encoder, store.waveforms(rows), store.sample_rate, cfg)
    return encoder, {"segments": len(rows), "final_loss": round(history[-1]["loss"], 4)}, history

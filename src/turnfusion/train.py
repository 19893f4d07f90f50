"""Stage `train@<mode>`: the model built around the cached encoders, and the training loop: class-balanced
sampling, focal loss, AdamW with separate encoder/head learning rates and warmup, frozen / gradual / full
encoder schedules, early stopping on a validation criterion, resumable checkpoints, and per-epoch logging
(DVCLive when given)."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from tqdm import tqdm

from turnfusion.datasets import collate_cached, collate_raw
from turnfusion.embed import load_encoders
from turnfusion.loop import autocast, optimizer_step, pick_device, seed_everything
from turnfusion.losses import classification_loss, distillation_loss
from turnfusion.metrics import classification_report
from turnfusion.models import TurnFusionModel
from turnfusion.segment import trim_threshold

if TYPE_CHECKING:
    from turnfusion.config import ModelConfig, SegmentConfig, TextConfig, TrainConfig

log = logging.getLogger(__name__)


def fingerprint(cfg: TrainConfig, extra: dict) -> str:
    """What a checkpoint must have been written with to be resumed."""
    return hashlib.sha256(json.dumps([asdict(cfg), extra], sort_keys=True, default=str).encode()).hexdigest()[:16]


def class_balanced_sampler(labels: np.ndarray, generator: torch.Generator) -> torch.utils.data.WeightedRandomSampler:
    """Draws every class equally often in expectation (weight of a sample = 1 / its class count)."""
    counts = np.bincount(labels, minlength=int(labels.max()) + 1)
    weights = 1.0 / counts[labels]
    return torch.utils.data.WeightedRandomSampler(torch.as_tensor(weights, dtype=torch.double), len(labels),
                                                  replacement=True, generator=generator)


def inverse_frequency_alpha(labels: np.ndarray, n_classes: int) -> torch.Tensor:
    counts = np.bincount(labels, minlength=n_classes).astype(float)
    alpha = counts.sum() / np.maximum(counts, 1) / n_classes
    return torch.tensor(alpha / alpha.mean(), dtype=torch.float32)


def class_alpha(cfg: TrainConfig, labels: np.ndarray, n_classes: int) -> torch.Tensor:
    """Per-class loss weights: as given; else uniform with the weighted sampler (it already balances the
    classes, so do not correct twice); else inverse class frequency."""
    if cfg.focal_alpha:
        return torch.tensor(cfg.focal_alpha, dtype=torch.float32)
    if cfg.sampler == "weighted":
        return torch.ones(n_classes)
    return inverse_frequency_alpha(labels, n_classes)


def make_loader(dataset, cfg: TrainConfig, shuffle: bool, generator: torch.Generator | None = None):
    collate = collate_raw if cfg.encoders != "frozen" else collate_cached
    sampler = None
    if shuffle and cfg.sampler == "weighted":
        sampler = class_balanced_sampler(dataset.table.label.to_numpy(), generator)
    return torch.utils.data.DataLoader(dataset, batch_size=cfg.batch_size, sampler=sampler,
                                       shuffle=shuffle and sampler is None, collate_fn=collate, generator=generator)


def set_encoders_trainable(model, trainable: bool) -> None:
    for encoder in model.encoders():
        encoder.requires_grad_(trainable)


def make_optimizer(model, cfg: TrainConfig) -> torch.optim.Optimizer:
    encoder_params = {id(p) for e in model.encoders() for p in e.parameters()}
    head = [p for p in model.parameters() if id(p) not in encoder_params]
    groups = [{"params": head, "lr": cfg.lr_head}]
    if cfg.encoders == "full":  # "gradual" adds the encoders' group when it unfreezes them
        groups.append({"params": [p for e in model.encoders() for p in e.parameters()], "lr": cfg.lr_encoder})
    return torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)


def warmup_schedule(optimizer, warmup_steps: int):
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / max(1, warmup_steps)))


@torch.no_grad()
def predict(model, dataset, cfg: TrainConfig, device, progress: bool = False) -> np.ndarray:
    """Class probabilities for every example of `dataset`, in order."""
    model.eval()
    probs = []
    for batch in tqdm(make_loader(dataset, cfg, shuffle=False), desc="predict", disable=not progress):
        with autocast(device):
            logits = model.batch_logits(batch)
        probs.append(torch.softmax(logits.float(), dim=-1).cpu().numpy())
    return np.concatenate(probs)


def train(model, train_set, val_set, cfg: TrainConfig, out_dir: Path, checkpoint_dir: Path, live=None,
          extra_fingerprint: dict | None = None, progress: bool = True) -> dict:
    """Train `model`; it ends with the best epoch's weights (by `cfg.criterion` on val), saved to `out_dir`.

    After each epoch the full state goes to `checkpoint_dir/last.pt`; a run with the same config
    resumes from it. The checkpoint is removed when training ends. Returns the history and best score.
    """
    device = pick_device(cfg.device)
    generator = seed_everything(cfg.seed)
    model.to(device)
    n_classes = model.config.num_labels
    alpha = class_alpha(cfg, train_set.table.label.to_numpy(), n_classes)
    set_encoders_trainable(model, cfg.encoders == "full")
    optimizer = make_optimizer(model, cfg)
    scheduler = warmup_schedule(optimizer, cfg.warmup_steps)
    state = {"epoch": 0, "best": -1.0, "best_epoch": 0, "history": [], "since_best": 0}
    best_weights = None
    checkpoint = Path(checkpoint_dir) / "last.pt"
    expected = fingerprint(cfg, extra_fingerprint or {})
    if checkpoint.exists():
        saved = torch.load(checkpoint, weights_only=False)
        if saved["fingerprint"] == expected:
            model.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            scheduler.load_state_dict(saved["scheduler"])
            generator.set_state(saved["generator"])
            torch.set_rng_state(saved["torch_rng"])
            state, best_weights = saved["state"], saved["best_weights"]
            log.info("resuming from %s after epoch %d", checkpoint, state["epoch"])
        else:
            log.info("ignoring %s: it was written with another configuration", checkpoint)
    for epoch in range(state["epoch"], cfg.epochs):
        if cfg.encoders == "gradual" and epoch == cfg.unfreeze_epoch:
            set_encoders_trainable(model, True)
            optimizer.add_param_group({"params": [p for e in model.encoders() for p in e.parameters()],
                                       "lr": cfg.lr_encoder})
            scheduler = warmup_schedule(optimizer, cfg.warmup_steps)
        model.train()
        total, count = 0.0, 0
        loader = make_loader(train_set, cfg, shuffle=True, generator=generator)
        for batch in tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not progress):
            with autocast(device):
                logits = model.batch_logits(batch)
            labels = batch["label"].to(device)
            loss = classification_loss(cfg.loss, logits, labels, alpha, cfg.focal_gamma)
            if cfg.distill_weight > 0:
                loss = loss + cfg.distill_weight * distillation_loss(logits, batch["trp"].to(device))
            optimizer_step(optimizer, loss, model.parameters())
            scheduler.step()
            total, count = total + loss.item() * len(labels), count + len(labels)
        val_probs = predict(model, val_set, cfg, device)
        val_labels = val_set.table.label.to_numpy()
        report = classification_report(val_labels, val_probs.argmax(1), val_probs)
        val_loss = classification_loss(cfg.loss, torch.log(torch.from_numpy(val_probs) + 1e-9),
                                       torch.tensor(val_labels), alpha, cfg.focal_gamma).item()
        score = report[cfg.criterion]
        record = {"epoch": epoch + 1, "train_loss": total / max(count, 1), "val_loss": val_loss,
                  "val_macro_f1": report["macro_f1"], "val_balanced_accuracy": report["balanced_accuracy"],
                  "val_min_class_f1": report["min_class_f1"]}
        state["history"].append(record)
        state["epoch"] = epoch + 1
        if score > state["best"]:
            state.update(best=score, best_epoch=epoch + 1, since_best=0)
            best_weights = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        else:
            state["since_best"] += 1
        if live is not None:
            for key, value in record.items():
                if key != "epoch":
                    live.log_metric(key, value)
            live.next_step()
        log.info("epoch %d: %s", epoch + 1, {k: round(v, 4) for k, v in record.items()})
        Path(checkpoint_dir).mkdir(parents=True, exist_ok=True)
        torch.save({"fingerprint": expected, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "generator": generator.get_state(),
                    "torch_rng": torch.get_rng_state(), "state": state, "best_weights": best_weights}, checkpoint)
        if state["since_best"] >= cfg.patience:
            log.info("early stop after epoch %d (best epoch %d)", epoch + 1, state["best_epoch"])
            break
    if best_weights is not None:
        model.load_state_dict(best_weights)
    model.save_pretrained(str(out_dir))
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    return state


def build_model(mode: str, cfg: ModelConfig, embeddings_dir: Path, preprocessing: dict) -> TurnFusionModel:
    """A fresh model of `mode` whose encoders are the ones the embedding cache was made with."""
    text_encoder, audio_encoder = load_encoders(embeddings_dir)
    return TurnFusionModel.from_encoders(
        text_encoder, audio_encoder, mode=mode, text_pooling=cfg.text_pooling, audio_pooling=cfg.audio_pooling,
        last_k=cfg.last_k, audio_segments=cfg.audio_segments, fusion_head=cfg.fusion_head,
        hidden_size=cfg.hidden_size, dropout=cfg.dropout, tensor_rank=cfg.tensor_rank,
        modality_dropout=cfg.modality_dropout, use_trp=cfg.use_trp, preprocessing=preprocessing)


def preprocessing(segment: SegmentConfig, text: TextConfig) -> dict:
    """How the inputs were prepared, saved in the model's config so that prediction prepares them the same way."""
    return {"sample_rate": segment.sample_rate, "max_seconds": segment.max_seconds, "channels": segment.channels,
            "trim_vad_threshold": trim_threshold(segment),
            "max_length": text.max_length, "n_previous": text.n_previous, "punctuation": text.punctuation,
            "trim_overlap": text.trim_overlap}

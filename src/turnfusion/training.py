"""Training loop: class-balanced sampling, focal loss, AdamW with separate encoder/head learning rates and
warmup, frozen / gradual / full encoder schedules, early stopping on a validation criterion, resumable
checkpoints, and per-epoch logging (DVCLive when given)."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from turnfusion.device import pick_device, seed_everything
from turnfusion.features import collate_cached, collate_raw, encode_raw_batch
from turnfusion.losses import classification_loss, distillation_loss
from turnfusion.metrics import classification_report

log = logging.getLogger(__name__)
ENCODER_SCHEDULES = ("frozen", "gradual", "full")
CRITERIA = ("macro_f1", "min_class_f1")


@dataclass
class TrainConfig:
    epochs: int = 20
    batch_size: int = 32
    lr_head: float = 1e-3
    lr_encoder: float = 5e-5
    weight_decay: float = 0.01
    warmup_steps: int = 50
    loss: str = "focal"
    focal_gamma: float = 2.0
    focal_alpha: list | None = None  # per class; None: inverse class frequency, normalised to mean 1
    distill_weight: float = 0.0
    sampler: str = "weighted"  # weighted (class-balanced) or shuffle
    encoders: str = "frozen"  # frozen, gradual (unfrozen from unfreeze_epoch on) or full
    unfreeze_epoch: int = 3
    criterion: str = "macro_f1"
    patience: int = 5
    seed: int = 0
    device: str = "auto"

    def __post_init__(self):
        if self.encoders not in ENCODER_SCHEDULES:
            raise ValueError(f"train.encoders must be one of {ENCODER_SCHEDULES}, got {self.encoders!r}")
        if self.criterion not in CRITERIA:
            raise ValueError(f"train.criterion must be one of {CRITERIA}, got {self.criterion!r}")
        if self.sampler not in ("weighted", "shuffle"):
            raise ValueError(f"train.sampler must be 'weighted' or 'shuffle', got {self.sampler!r}")

    def fingerprint(self, extra: dict) -> str:
        return hashlib.sha256(json.dumps([asdict(self), extra], sort_keys=True, default=str).encode()).hexdigest()[:16]


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


def to_model_inputs(model, batch: dict, cfg: TrainConfig, device) -> dict:
    if cfg.encoders != "frozen":
        return encode_raw_batch(model, batch, device)
    return {k: v.to(device) for k, v in batch.items()}


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
        inputs = to_model_inputs(model, batch, cfg, device)
        with autocast(device):
            logits = model(inputs.get("text_hidden"), inputs.get("text_mask"), inputs.get("audio_hidden"),
                           inputs.get("audio_mask"), inputs["trp"])
        probs.append(torch.softmax(logits.float(), dim=-1).cpu().numpy())
    return np.concatenate(probs)


def autocast(device: torch.device):
    """bf16 autocast on CUDA, plain fp32 elsewhere."""
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)


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
    fingerprint = cfg.fingerprint(extra_fingerprint or {})
    if checkpoint.exists():
        saved = torch.load(checkpoint, weights_only=False)
        if saved["fingerprint"] == fingerprint:
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
            inputs = to_model_inputs(model, batch, cfg, device)
            with autocast(device):
                logits = model(inputs.get("text_hidden"), inputs.get("text_mask"), inputs.get("audio_hidden"),
                               inputs.get("audio_mask"), inputs["trp"])
            loss = classification_loss(cfg.loss, logits, inputs["label"], alpha, cfg.focal_gamma)
            if cfg.distill_weight > 0:
                loss = loss + cfg.distill_weight * distillation_loss(logits, inputs["trp"])
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            total, count = total + loss.item() * len(inputs["label"]), count + len(inputs["label"])
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
        torch.save({"fingerprint": fingerprint, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
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

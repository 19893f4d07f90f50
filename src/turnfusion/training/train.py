"""Stage `train@<mode>`: the model built around the cached encoders, and the training loop: class-balanced
sampling, focal loss, AdamW with separate encoder/head learning rates and warmup, frozen / text / gradual /
full encoder schedules, early stopping on a validation criterion, resumable checkpoints, and per-epoch logging
(DVCLive when given)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from tqdm import tqdm

from turnfusion.errors import DataError, one_line
from turnfusion.evaluation.metrics import classification_report
from turnfusion.models import TurnFusionModel
from turnfusion.models.fusion import product_of_experts
from turnfusion.training.distributed import Processes, processes
from turnfusion.training.encoders import load_encoders
from turnfusion.training.loop import autocast, predict, seed_everything
from turnfusion.training.losses import classification_loss, distillation_loss, experts_loss
from turnfusion.training.schedules import EncoderSchedule

if TYPE_CHECKING:
    from turnfusion.config import ModelConfig, TrainConfig

log = logging.getLogger(__name__)


def fingerprint(cfg: TrainConfig, extra: dict) -> str:
    """What a checkpoint must have been written with to be resumed."""
    return hashlib.sha256(json.dumps([asdict(cfg), extra], sort_keys=True, default=str).encode()).hexdigest()[:16]


def class_weights(labels: np.ndarray) -> np.ndarray:
    """Sampling weights that draw every class equally often in expectation (1 / the sample's class count)."""
    counts = np.bincount(labels, minlength=int(labels.max()) + 1)
    return 1.0 / counts[labels]


def epoch_batches(labels: np.ndarray, sampler: str, batch_size: int, generator: torch.Generator) -> np.ndarray:
    """The rows of every global batch of one epoch, (steps, batch_size), the same in every process.

    weighted: ceil(n / batch_size) full batches drawn with replacement, class-balanced; shuffle: a permutation,
    its last batch filled up from its start (as torch's DistributedSampler pads), so that every batch is full
    and splits evenly over processes and accumulation steps."""
    n = len(labels)
    steps = -(-n // batch_size)
    if sampler == "weighted":
        weights = torch.as_tensor(class_weights(labels), dtype=torch.double)
        rows = torch.multinomial(weights, steps * batch_size, replacement=True, generator=generator).numpy()
    else:
        rows = np.resize(torch.randperm(n, generator=generator).numpy(), steps * batch_size)
    return rows.reshape(steps, batch_size)


def micro_batches(batches: np.ndarray, processes: Processes, accumulation: int) -> list[list[list[int]]]:
    """This process's micro-batches of every step: its 1 / world share of each global batch, cut into
    `accumulation` pieces. With the gradients averaged over pieces and processes, a step is the step one
    process would take on the whole batch."""
    size = batches.shape[1] // (processes.world * accumulation)
    mine = batches[:, processes.rank * size * accumulation: (processes.rank + 1) * size * accumulation]
    return [[step[a * size: (a + 1) * size].tolist() for a in range(accumulation)] for step in mine]


def check_batch_split(cfg: TrainConfig, world: int) -> None:
    if cfg.batch_size % (world * cfg.grad_accumulation):
        raise DataError(f"params.yaml: train.batch_size {cfg.batch_size} must be a multiple of the number of "
                        f"processes ({world}) times train.grad_accumulation ({cfg.grad_accumulation})")


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


def set_encoders_trainable(model, schedule: EncoderSchedule, epoch: int) -> None:
    """The encoders train in `epoch` as the schedule says; the others are frozen."""
    for encoder in model.encoders():
        encoder.requires_grad_(False)
    for encoder in schedule.encoders(model) if schedule.trains_at(epoch) else []:
        encoder.requires_grad_(True)


def make_optimizer(model, cfg: TrainConfig, schedule: EncoderSchedule) -> torch.optim.Optimizer:
    """AdamW: the head at `lr_head`; the encoders that train from the start at `lr_encoder` (`gradual` adds their
    group when it unfreezes them)."""
    encoder_params = {id(p) for e in model.encoders() for p in e.parameters()}
    head = [p for p in model.parameters() if id(p) not in encoder_params]
    groups = [{"params": head, "lr": cfg.lr_head}]
    trained = [p for e in schedule.encoders(model) for p in e.parameters()]
    if trained and schedule.trains_at(0) and not schedule.unfreezes_at(0):
        groups.append({"params": trained, "lr": cfg.lr_encoder})
    return torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)


def warmup_schedule(optimizer, warmup_steps: int):
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / max(1, warmup_steps)))


class BatchLogits(torch.nn.Module):
    """The model as one module whose forward takes a whole batch, so that DistributedDataParallel sees the
    encoders' part of the graph too (trainable encoders run in `batch_logits`, before `forward`). It gives each
    expert's logits (B, experts, classes), since each expert is trained as a classifier of its own."""

    def __init__(self, model: TurnFusionModel):
        super().__init__()
        self.model = model

    def forward(self, batch: dict) -> torch.Tensor:
        return self.model.batch_logits(batch, experts=True)


def wrap(model, processes: Processes) -> torch.nn.Module:
    """The module that training calls: DistributedDataParallel over several processes (it averages the
    gradients of the parameters that require them when it is built, hence rebuilt when encoders unfreeze)."""
    step = BatchLogits(model)
    if processes.world == 1:
        return step
    ids = [processes.device.index] if processes.device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(step, device_ids=ids)


def predict_shared(model, dataset, cfg: TrainConfig, collate, processes: Processes, precision: str) -> np.ndarray:
    """`loop.predict` with every process taking a contiguous share of `dataset`; every process gets all of it."""
    share = processes.share(len(dataset))
    mine = predict(model, torch.utils.data.Subset(dataset, share), cfg.batch_size, processes.device, collate,
                   precision=precision)
    return np.concatenate(processes.gather(mine))


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """Randomness of one epoch (batch order: rank 0's; dropout: each process its own), so that a resumed run
    repeats the epochs an uninterrupted one would have run."""
    return seed * 1_000_003 + epoch * 1_009 + rank


@dataclass
class Optimization:
    """What takes a step: the optimizer, its learning-rate schedule and the moving average of the weights."""

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    ema: torch.optim.swa_utils.AveragedModel | None

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "ema": self.ema.state_dict() if self.ema is not None else None}

    def load_state_dict(self, saved: dict) -> None:
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scheduler.load_state_dict(saved["scheduler"])
        if self.ema is not None:
            self.ema.load_state_dict(saved["ema"])


def train(model, train_set, val_set, cfg: TrainConfig, out_dir: Path, checkpoint_dir: Path, live=None,
          extra_fingerprint: dict | None = None, progress: bool = True, precision: str = "fp32") -> dict:
    """Train `model`; it ends with the best epoch's weights (by `cfg.criterion` on val), saved to `out_dir`.

    Launched as several processes (torchrun, accelerate launch), each takes its share of every global batch
    (`micro_batches`) and DistributedDataParallel averages the gradients; validation is shared out too. Only
    the main process writes: `live`, checkpoints, the model. After each epoch the full state goes to
    `checkpoint_dir/last.pt`; a run with the same config (and the same number of processes or not) resumes from
    it. The checkpoint is removed when training ends. Returns the history and best score.
    """
    procs = processes(cfg.device, "train.device")
    check_batch_split(cfg, procs.world)
    seed_everything(cfg.seed)
    schedule = EncoderSchedule.of(cfg)
    model.to(procs.device)
    alpha = class_alpha(cfg, train_set.table.label.to_numpy(), model.config.num_labels).to(procs.device)
    set_encoders_trainable(model, schedule, 0)
    optimizer = make_optimizer(model, cfg, schedule)
    opt = Optimization(optimizer, warmup_schedule(optimizer, cfg.warmup_steps), moving_average(model, cfg.ema_decay))
    scored = opt.ema.module if opt.ema is not None else model  # the weights val scores and training keeps
    checkpoint = Path(checkpoint_dir) / "last.pt"
    expected = fingerprint(cfg, extra_fingerprint or {})
    state, best_weights = resume(checkpoint, expected, model, opt, cfg, schedule)
    step_model = wrap(model, procs)
    for epoch in range(state["epoch"], cfg.epochs):
        if schedule.unfreezes_at(epoch):
            unfreeze(model, opt, cfg, schedule)
            step_model = wrap(model, procs)
        train_loss = train_epoch(step_model, model, opt, train_set, alpha, cfg, schedule, procs, epoch, precision,
                                 progress)
        record = {"epoch": epoch + 1, "train_loss": train_loss,
                  **validate(scored, val_set, alpha, cfg, schedule, procs, precision)}
        if keep_score(state, record, cfg):
            best_weights = {k: v.detach().cpu().clone() for k, v in scored.state_dict().items()}
        if procs.main:
            log_epoch(live, record)
            Path(checkpoint_dir).mkdir(parents=True, exist_ok=True)
            torch.save({"fingerprint": expected, "model": model.state_dict(), **opt.state_dict(), "state": state,
                        "best_weights": best_weights}, checkpoint)
        if state["since_best"] >= cfg.patience:
            if procs.main:
                log.info("early stop after epoch %d (best epoch %d)", epoch + 1, state["best_epoch"])
            break
    if best_weights is not None:
        model.load_state_dict(best_weights)
    procs.barrier()  # nobody reads the checkpoint any more
    if procs.main:
        model.save_pretrained(str(out_dir))
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
    return state


def resume(checkpoint: Path, expected: str, model, opt: Optimization, cfg: TrainConfig,
           schedule: EncoderSchedule) -> tuple[dict, dict | None]:
    """(state, best weights so far): from `checkpoint` when it was written with the same configuration (its
    `expected` fingerprint), else a fresh start."""
    fresh = {"epoch": 0, "best": -1.0, "best_epoch": 0, "history": [], "since_best": 0}
    if not checkpoint.exists():
        return fresh, None
    saved = load_checkpoint(checkpoint)
    if saved["fingerprint"] != expected:
        log.info("ignoring %s: it was written with another configuration", checkpoint)
        return fresh, None
    if schedule.unfrozen_before(saved["state"]["epoch"]):  # the optimizer state has the encoders' group
        unfreeze(model, opt, cfg, schedule)
    model.load_state_dict(saved["model"])
    opt.load_state_dict(saved)
    log.info("resuming from %s after epoch %d", checkpoint, saved["state"]["epoch"])
    return saved["state"], saved["best_weights"]


def train_epoch(step_model, model, opt: Optimization, train_set, alpha: torch.Tensor, cfg: TrainConfig,
                schedule: EncoderSchedule, procs: Processes, epoch: int, precision: str, progress: bool) -> float:
    """One epoch of steps; returns the mean training loss over every process's examples."""
    batches = epoch_batches(train_set.table.label.to_numpy(), cfg.sampler, cfg.batch_size,
                            torch.Generator().manual_seed(epoch_seed(cfg.seed, epoch)))
    torch.manual_seed(epoch_seed(cfg.seed, epoch, procs.rank))
    model.train()
    total = np.zeros(2)  # loss sum, examples
    for pieces in tqdm(micro_batches(batches, procs, cfg.grad_accumulation),
                       desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not (progress and procs.main)):
        opt.optimizer.zero_grad()
        for k, rows in enumerate(pieces):
            batch = schedule.inputs.collate([train_set[i] for i in rows])
            with no_sync(step_model, k < len(pieces) - 1):
                with autocast(procs.device, precision):
                    logits = step_model(batch).float()
                labels = batch["label"].to(procs.device)
                loss = experts_loss(cfg.loss, logits, labels, alpha, cfg.focal_gamma)
                if cfg.distill_weight > 0:
                    loss = loss + cfg.distill_weight * distillation_loss(product_of_experts(logits),
                                                                         batch["trp"].to(procs.device))
                (loss / len(pieces)).backward()  # the mean over the whole batch, once processes average
            total += (loss.item() * len(labels), len(labels))
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.optimizer.step()
        opt.scheduler.step()
        if opt.ema is not None:
            opt.ema.update_parameters(model)
    loss_sum, count = procs.sum(total)
    return float(loss_sum / max(count, 1))


def validate(scored, val_set, alpha: torch.Tensor, cfg: TrainConfig, schedule: EncoderSchedule, procs: Processes,
             precision: str) -> dict:
    """Val loss and scores of the weights training keeps (`scored`), shared out over the processes."""
    probs = predict_shared(scored, val_set, cfg, schedule.inputs.collate, procs, precision)
    labels = val_set.table.label.to_numpy()
    report = classification_report(labels, probs.argmax(1), probs)
    loss = classification_loss(cfg.loss, torch.log(torch.from_numpy(probs) + 1e-9), torch.tensor(labels),
                               alpha.cpu(), cfg.focal_gamma).item()
    return {"val_loss": loss, "val_macro_f1": report["macro_f1"], "val_balanced_accuracy": report["balanced_accuracy"],
            "val_min_class_f1": report["min_class_f1"], "score": report[cfg.criterion]}


def keep_score(state: dict, record: dict, cfg: TrainConfig) -> bool:
    """Adds the epoch's `record` to `state`; whether it is the best so far (by `cfg.criterion`)."""
    score = record.pop("score")
    state["history"].append(record)
    state["epoch"] = record["epoch"]
    if score > state["best"]:
        state.update(best=score, best_epoch=record["epoch"], since_best=0)
        return True
    state["since_best"] += 1
    return False


def log_epoch(live, record: dict) -> None:
    if live is not None:
        for key, value in record.items():
            if key != "epoch":
                live.log_metric(key, value)
        live.next_step()
    log.info("epoch %d: %s", record["epoch"], {k: round(v, 4) for k, v in record.items()})


def load_checkpoint(path: Path) -> dict:
    """A checkpoint of `train`, loaded with `weights_only=True`: tensors, numbers, strings and containers only,
    so a crafted file cannot run code when it is read. Anything else is a DataError naming the file."""
    try:
        return torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:  # pickle.UnpicklingError for a payload, RuntimeError / EOFError for a torn file
        reason = one_line(exc)
        raise DataError(f"{path}: not a checkpoint of plain tensors and values, refused ({type(exc).__name__}: "
                        f"{reason}); delete it to train from the start") from None


def unfreeze(model, opt: Optimization, cfg: TrainConfig, schedule: EncoderSchedule) -> None:
    """`gradual`: the encoders start training, with their own learning rate and a new warmup."""
    set_encoders_trainable(model, schedule, schedule.unfreeze_epoch)
    opt.optimizer.add_param_group({"params": [p for e in schedule.encoders(model) for p in e.parameters()],
                                   "lr": cfg.lr_encoder})
    opt.scheduler = warmup_schedule(opt.optimizer, cfg.warmup_steps)


def moving_average(model, decay: float) -> torch.optim.swa_utils.AveragedModel | None:
    """An exponential moving average of the model's weights and buffers (`train.ema_decay`; None when 0): it
    smooths the last steps' noise out of the weights that val scores and that training keeps."""
    if decay == 0:
        return None
    return torch.optim.swa_utils.AveragedModel(
        model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(decay), use_buffers=True)


def no_sync(step_model, skip: bool):
    """Accumulation steps before the last need no gradient averaging (DistributedDataParallel.no_sync)."""
    if skip and isinstance(step_model, torch.nn.parallel.DistributedDataParallel):
        return step_model.no_sync()
    return contextlib.nullcontext()


def build_model(mode: str, cfg: ModelConfig, embeddings_dir: Path, text_input: str = "context",
                words: bool = True) -> TurnFusionModel:
    """A fresh model of `mode` whose encoders are the ones the embedding cache was made with, reading text inputs
    of the form `text_input` (the processor's `input_form`; `words`: whether the corpus has them)."""
    if not words and cfg.text_span == "current" and mode != "audio":
        raise DataError("params.yaml: model.text_span: current reads the current utterance's words, and this corpus "
                        "has none (recordings without transcripts): every text vector would be zero; use all or cls")
    text_encoder, audio_encoder = load_encoders(embeddings_dir)
    try:
        return TurnFusionModel.from_encoders(text_encoder, audio_encoder, mode, cfg, text_input)
    except ValueError as exc:  # the text input and span the params ask for, against the cached encoder
        raise DataError(f"params.yaml: model / text.input_form: {exc} (embeddings in {embeddings_dir})") from None

"""What the three training loops (teacher, audio pretraining, turn model) share: device choice, seeding,
autocast, the order of batches and the optimizer step."""

from __future__ import annotations

import random
from collections.abc import Iterator

import numpy as np
import torch
from tqdm import tqdm

# GPT-2's GELU (tanh approximation) as torch's fused kernel: transformers' "gelu_new" computes the same formula in
# several Python-level ops (within one float step of it, <= 4.8e-7), and a teacher-size training step took 27 % longer
# with it on 2 cores
GPT2_ACTIVATION = "gelu_pytorch_tanh"


def pick_device(requested: str = "auto") -> torch.device:
    """`auto`: CUDA when present, else CPU; or an explicit torch device string."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def autocast(device: torch.device, precision: str):
    """`precision` bf16: bf16 autocast on CUDA (the CPU stays fp32: its bf16 kernels are slow and lossy there);
    fp32: no autocast."""
    if device.type == "cuda" and precision == "bf16":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast(device.type, enabled=False)


def index_batches(n: int, batch_size: int, generator: torch.Generator | None = None) -> Iterator[list[int]]:
    """Row indices of each batch: in order, or shuffled by `generator` when one is given."""
    order = torch.randperm(n, generator=generator).tolist() if generator is not None else list(range(n))
    for start in range(0, n, batch_size):
        yield order[start: start + batch_size]


def optimizer_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor, clipped, max_norm: float = 1.0) -> None:
    """One update: gradients of `loss`, the norm of `clipped` parameters capped at `max_norm`, a step."""
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(clipped, max_norm)
    optimizer.step()


@torch.no_grad()
def predict(model, dataset, batch_size: int, device, collate, progress: bool = False, precision: str = "fp32",
            encode_segment=None) -> np.ndarray:
    """Class probabilities for every example of `dataset`, in order, in batches made by `collate`
    (`datasets.Inputs.collate`); in raw batches, audio segments encoded by `encode_segment` (default: the model's
    own)."""
    model.eval()
    probs = []
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, collate_fn=collate)
    for batch in tqdm(loader, desc="predict", disable=not progress):
        with autocast(device, precision):
            logits = model.batch_logits(batch, encode_segment)
        probs.append(torch.softmax(logits.float(), dim=-1).cpu().numpy())
    return np.concatenate(probs) if probs else np.zeros((0, model.config.num_labels), np.float32)

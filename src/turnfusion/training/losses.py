"""Training losses: focal loss (per-class alpha, gamma), cross-entropy, and distillation towards teacher TRP."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from turnfusion.schema import SHIFT


def focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: torch.Tensor | None = None,
               gamma: float = 2.0) -> torch.Tensor:
    """Mean over samples of -alpha[y] * (1 - p_y)^gamma * log p_y (one term per sample, not per class).

    With gamma = 0 and uniform alpha = 1 this is exactly the cross-entropy.
    """
    log_p = F.log_softmax(logits.float(), dim=-1).gather(1, target.unsqueeze(1)).squeeze(1)
    loss = -((1 - log_p.exp()) ** gamma) * log_p
    if alpha is not None:
        loss = loss * alpha.to(loss.device)[target]
    return loss.mean()


def distillation_loss(logits: torch.Tensor, trp: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy between the model's P(shift) and the teacher's TRP (a soft target)."""
    p_shift = F.softmax(logits.float(), dim=-1)[:, SHIFT].clamp(1e-6, 1 - 1e-6)
    return F.binary_cross_entropy(p_shift, trp.float().clamp(0, 1))


def classification_loss(kind: str, logits: torch.Tensor, target: torch.Tensor, alpha: torch.Tensor | None,
                        gamma: float) -> torch.Tensor:
    if kind == "focal":
        return focal_loss(logits, target, alpha, gamma)
    if kind == "ce":
        return F.cross_entropy(logits.float(), target, weight=alpha.to(logits.device) if alpha is not None else None)
    raise ValueError(f"loss must be 'focal' or 'ce', got {kind!r}")


def experts_loss(kind: str, expert_logits: torch.Tensor, target: torch.Tensor, alpha: torch.Tensor | None,
                 gamma: float) -> torch.Tensor:
    """The mean of each expert's `classification_loss` over its logits in (B, experts, classes): every expert
    learns to classify alone (a single expert: exactly its loss)."""
    return torch.stack([classification_loss(kind, expert_logits[:, k], target, alpha, gamma)
                        for k in range(expert_logits.shape[1])]).mean()

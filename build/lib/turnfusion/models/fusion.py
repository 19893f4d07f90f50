"""Fusion heads: from a text vector and an audio vector (either may be absent) to class logits."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from turnfusion.choices import FUSION_HEADS


def mlp(in_dim: int, hidden: int, out_dim: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, out_dim))


class ConcatHead(nn.Module):
    """Concatenation + MLP; also the head of single-modality models."""

    def __init__(self, dims: list[int], hidden: int, n_classes: int, dropout: float):
        super().__init__()
        self.net = mlp(sum(dims), hidden, n_classes, dropout)

    def forward(self, parts: list[torch.Tensor]) -> torch.Tensor:
        return self.net(torch.cat(parts, dim=-1))


class GatedHead(nn.Module):
    """Gated multimodal unit: each modality projected to `hidden`, mixed by a learnt per-feature gate."""

    def __init__(self, dims: list[int], hidden: int, n_classes: int, dropout: float):
        super().__init__()
        if len(dims) != 2:
            raise ValueError("gated fusion needs exactly two modalities")
        self.project = nn.ModuleList([nn.Sequential(nn.Linear(d, hidden), nn.Tanh()) for d in dims])
        self.gate = nn.Linear(sum(dims), hidden)
        self.out = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, n_classes))

    def forward(self, parts: list[torch.Tensor]) -> torch.Tensor:
        text, audio = (p(x) for p, x in zip(self.project, parts, strict=True))
        g = torch.sigmoid(self.gate(torch.cat(parts, dim=-1)))
        return self.out(g * text + (1 - g) * audio)


class TensorHead(nn.Module):
    """Low-rank multimodal tensor fusion (Liu et al., 2018), the MM-F2F baseline's choice.

    The outer product of [text; 1] and [audio; 1] is never built: rank-r modality factors are
    multiplied elementwise, which keeps unimodal and bimodal interaction terms.
    """

    def __init__(self, dims: list[int], hidden: int, n_classes: int, dropout: float, rank: int = 4):
        super().__init__()
        self.factors = nn.ParameterList([nn.Parameter(torch.randn(rank, d + 1, hidden) * (d + 1) ** -0.5)
                                         for d in dims])
        self.rank_weights = nn.Parameter(torch.full((1, rank), 1.0 / rank))
        self.bias = nn.Parameter(torch.zeros(hidden))
        self.out = nn.Sequential(nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, n_classes))

    def forward(self, parts: list[torch.Tensor]) -> torch.Tensor:
        fused = None
        for x, factor in zip(parts, self.factors, strict=True):
            x1 = torch.cat([x, torch.ones_like(x[:, :1])], dim=-1)
            projected = torch.einsum("bd,rdh->brh", x1, factor)
            fused = projected if fused is None else fused * projected
        fused = torch.einsum("or,brh->bh", self.rank_weights, fused) + self.bias
        return self.out(fused)


class ExpertsHead(nn.Module):
    """Product of experts: an MLP per modality (`experts`), and with `joint` one more on both (`experts_concat`),
    each trained as a classifier of its own (`expert_logits`: the training loss is the mean of theirs); the
    decision multiplies their probabilities. A joint head trained alone leans on the modality that is easiest
    to fit and leaves the other's cues unused; experts that must each classify alone cannot."""

    def __init__(self, dims: list[int], hidden: int, n_classes: int, dropout: float, joint: bool):
        super().__init__()
        self.joint = joint
        self.experts = nn.ModuleList([mlp(d, hidden, n_classes, dropout) for d in dims]
                                     + ([mlp(sum(dims), hidden, n_classes, dropout)] if joint else []))

    def expert_logits(self, parts: list[torch.Tensor]) -> torch.Tensor:
        """(B, experts, classes): each expert's own logits."""
        inputs = parts + ([torch.cat(parts, dim=-1)] if self.joint else [])
        return torch.stack([expert(x) for expert, x in zip(self.experts, inputs, strict=True)], dim=1)

    def forward(self, parts: list[torch.Tensor]) -> torch.Tensor:
        return product_of_experts(self.expert_logits(parts))


def product_of_experts(expert_logits: torch.Tensor) -> torch.Tensor:
    """Logits (B, classes) whose softmax is the normalised product of the experts' (B, experts, classes)
    probabilities; of a single expert, its own logits up to a constant."""
    return F.log_softmax(expert_logits.float(), dim=-1).sum(dim=1)


def expert_logits(head: nn.Module, parts: list[torch.Tensor]) -> torch.Tensor:
    """(B, experts, classes) of any head: one expert unless it is an `ExpertsHead`."""
    return head.expert_logits(parts) if isinstance(head, ExpertsHead) else head(parts).unsqueeze(1)


def make_head(kind: str, dims: list[int], hidden: int, n_classes: int, dropout: float, rank: int = 4) -> nn.Module:
    if len(dims) == 1 or kind == "concat":
        return ConcatHead(dims, hidden, n_classes, dropout)
    if kind == "gated":
        return GatedHead(dims, hidden, n_classes, dropout)
    if kind == "tensor":
        return TensorHead(dims, hidden, n_classes, dropout, rank)
    if kind in ("experts", "experts_concat"):
        return ExpertsHead(dims, hidden, n_classes, dropout, joint=kind == "experts_concat")
    raise ValueError(f"unknown fusion head {kind!r}; choose one of {FUSION_HEADS}")

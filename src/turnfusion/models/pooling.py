"""Mask-correct pooling of a sequence of frames/tokens into one vector: padding never reaches the result.

Every pooling takes x of shape (batch, time, dim) and a mask of shape (batch, time) with 1 for real
positions; a row with no real position pools to zeros.
"""

from __future__ import annotations

import torch
from torch import nn

from turnfusion.choices import AUDIO_POOLINGS, TEXT_POOLINGS, TEXT_SPANS
from turnfusion.models.encoding import segment_ids


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).to(x.dtype)
    return (x * m).sum(1) / m.sum(1).clamp(min=1)


def masked_max(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    filled = x.masked_fill(~mask.bool().unsqueeze(-1), float("-inf")).amax(1)
    return torch.where(torch.isfinite(filled), filled, torch.zeros_like(filled))


def masked_std(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).to(x.dtype)
    mean = masked_mean(x, mask).unsqueeze(1)
    var = (((x - mean) ** 2) * m).sum(1) / m.sum(1).clamp(min=1)
    return torch.sqrt(var + 1e-6) * (m.sum(1) > 0)


def last_positions(mask: torch.Tensor) -> torch.Tensor:
    """Index of the last real position of each row (right padding or any mask layout)."""
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    return torch.where(mask.bool(), positions, torch.full_like(positions, -1)).amax(1).clamp(min=0)


def span_mask(input_ids: torch.Tensor, attention_mask: torch.Tensor, span: str,
              sep_token_id: int | None = None) -> torch.Tensor:
    """The token positions a text pooling reads (`model.text_span`): all real ones; or in a segment pair
    ([CLS] A [SEP] B [SEP], `text.words.encode_pairs`) the current utterance's (B's words: after the first separator,
    separators left out) or the first ([CLS]). From the ids alone, so training, the embedding cache and the ONNX
    graph compute the same."""
    real = attention_mask.bool()
    if span not in TEXT_SPANS:
        raise ValueError(f"unknown text span {span!r}; one of {TEXT_SPANS}")
    if span == "all":
        return real
    if span == "cls":
        return real & (torch.arange(real.shape[1], device=real.device) == 0)
    return real & (input_ids != sep_token_id) & segment_ids(input_ids, sep_token_id).bool()


class Pooling(nn.Module):
    def __init__(self, kind: str, dim: int, last_k: int = 10):
        super().__init__()
        if kind not in set(AUDIO_POOLINGS) | set(TEXT_POOLINGS):
            raise ValueError(f"unknown pooling {kind!r}; audio: {AUDIO_POOLINGS}, text: {TEXT_POOLINGS}")
        self.kind, self.dim, self.last_k = kind, dim, last_k
        if kind == "attention":
            self.score = nn.Sequential(nn.Linear(dim, dim // 2), nn.Tanh(), nn.Linear(dim // 2, 1))

    @property
    def out_dim(self) -> int:
        return 2 * self.dim if self.kind in ("stats", "mean_max") else self.dim

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        mask = mask.bool()
        if self.kind == "mean":
            return masked_mean(x, mask)
        if self.kind == "max":
            return masked_max(x, mask)
        if self.kind == "stats":
            return torch.cat([masked_mean(x, mask), masked_std(x, mask)], dim=-1)
        if self.kind == "mean_max":
            return torch.cat([masked_mean(x, mask), masked_max(x, mask)], dim=-1)
        if self.kind == "last":
            out = x[torch.arange(x.shape[0], device=x.device), last_positions(mask)]
            return out * mask.any(1, keepdim=True)
        if self.kind == "last_k":  # mean of the last k real frames: the end carries the cues
            from_end = mask.long().flip(1).cumsum(1).flip(1)  # 1 at the last real frame, 2 before it, ...
            return masked_mean(x, mask & (from_end <= self.last_k))
        scores = self.score(x).squeeze(-1).masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=1).nan_to_num(0.0)  # all-padding rows: zero weights
        return (weights.unsqueeze(-1) * x).sum(1)

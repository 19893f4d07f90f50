"""Training and evaluation examples: the utterance table joined from the stage outputs, datasets over the
embedding cache (frozen encoders), over token ids and the cached audio (the text encoder trains alone) or over
token ids and waveforms (trainable encoders), and their collate functions. Every kind of batch goes to
`TurnFusionModel.batch_logits`."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from turnfusion.data.stores import EmbeddingCache, PackedTokens, SegmentStore
from turnfusion.models.encoding import pad_sequences, stack_segments
from turnfusion.text.history import histories
from turnfusion.text.words import pad_right

log = logging.getLogger(__name__)


def utterance_table(segments: pd.DataFrame, tokens: pd.DataFrame, trp: pd.DataFrame | None,
                    n_audio_segments: int) -> pd.DataFrame:
    """One row per utterance that has both audio and text: split, label, token span, segment row,
    TRP, and `audio_rows` = segment rows of the current utterance and its history, the most recently ended first
    (`history`; -1: none)."""
    seg = segments.reset_index(drop=True).assign(segment_row=np.arange(len(segments)))
    table = seg.merge(tokens[["sentence_id", "tok_offset", "tok_length"]].assign(token_row=np.arange(len(tokens))),
                      on="sentence_id", how="inner")
    if trp is not None:
        table = table.merge(trp[["sentence_id", "trp"]], on="sentence_id", how="left")
    else:
        table["trp"] = np.nan
    lost = len(segments) - len(table)
    if lost:
        log.warning("%d segment(s) have no token context (dropped by the tokenize stage) and are left out", lost)
    table = table.sort_values(["video_id", "position"], kind="stable").reset_index(drop=True)
    rows = np.full((len(table), n_audio_segments), -1, dtype=np.int64)
    seg_row = table.segment_row.to_numpy()
    for i, previous in enumerate(histories(table, n_audio_segments - 1)):  # the same history as the text context
        chain = [i, *previous[::-1]]  # current first, then the most recently ended
        rows[i, : len(chain)] = seg_row[chain]
    table["audio_rows"] = list(rows)
    if "excluded" in table:  # segment.conflicting_labels: drop: in others' history, never trained or scored on
        table = table[~table.excluded.astype(bool)].reset_index(drop=True)
    return table


class CachedExamples(torch.utils.data.Dataset):
    """Examples from the frozen-encoder cache: hidden states, never the encoders. With `positions` (`span_positions`
    of a model whose text pooling reads a span of the context) a row's text is the hidden states of those tokens
    alone: pooling them is pooling the whole row under the span's mask, as the model does from token ids."""

    def __init__(self, table: pd.DataFrame, cache: EmbeddingCache, tokens: PackedTokens | None = None,
                 positions=None, with_audio: bool = True):
        self.table = table.reset_index(drop=True)
        self.with_audio = with_audio  # False: a model without audio, whose batches need none
        self.tokens, self.positions = tokens, positions
        self.token_row = self.table.token_row.to_numpy() if "token_row" in self.table else None
        self.tok_offset, self.tok_length = self.table.tok_offset.to_numpy(), self.table.tok_length.to_numpy()
        self.audio_rows = np.stack(self.table.audio_rows.to_numpy()) if len(self.table) else np.zeros((0, 1), int)
        self.trp = np.nan_to_num(self.table.trp.to_numpy(dtype=float))
        self.labels = self.table.label.to_numpy()
        self.cache = cache

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, i: int) -> dict:
        text = self.cache.text_hidden(self.tok_offset[i], self.tok_length[i])
        if self.positions is not None:
            text = text[self.positions(self.tokens.row(int(self.token_row[i])))]
        return {"text": text, **self.audio_and_label(i)}

    def audio_and_label(self, i: int) -> dict:
        item = {"trp": float(self.trp[i]), "label": int(self.labels[i])}
        if self.with_audio:
            item["audio"] = [self.cache.segment_frames(r) if r >= 0 else None for r in self.audio_rows[i]]
        return item


def collate_audio_and_label(items: list[dict]) -> dict:
    batch = {"trp": torch.tensor([it["trp"] for it in items]), "label": torch.tensor([it["label"] for it in items])}
    if items and "audio" in items[0]:  # none for a model without audio
        batch["audio_hidden"], batch["audio_mask"] = stack_segments([it["audio"] for it in items])
    return batch


def collate_cached(items: list[dict]) -> dict:
    text, text_mask = pad_sequences([it["text"] for it in items])
    return {"text_hidden": text, "text_mask": text_mask, **collate_audio_and_label(items)}


class TextTrainingExamples(CachedExamples):
    """Examples for training the text encoder alone: token ids, and the audio's hidden states from the cache."""

    def __init__(self, table: pd.DataFrame, cache: EmbeddingCache, tokens: PackedTokens, with_audio: bool = True):
        super().__init__(table, cache, tokens, with_audio=with_audio)

    def __getitem__(self, i: int) -> dict:
        return {"ids": self.tokens.row(int(self.token_row[i])), **self.audio_and_label(i)}


def collate_text_training(items: list[dict]) -> dict:
    ids, mask = pad_right([it["ids"] for it in items], 0)
    return {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask),
            **collate_audio_and_label(items)}


class RawExamples(torch.utils.data.Dataset):
    """Examples as token ids and waveforms, for training with trainable encoders."""

    def __init__(self, table: pd.DataFrame, tokens: PackedTokens, store: SegmentStore):
        self.table, self.tokens, self.store = table.reset_index(drop=True), tokens, store

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, i: int) -> dict:
        row = self.table.iloc[i]
        return {"ids": self.tokens.row(int(row.token_row)),
                "audio": [self.store.waveform(int(r)) if r >= 0 else None for r in row.audio_rows],
                "trp": float(np.nan_to_num(row.trp)), "label": int(row.label)}


def collate_raw(items: list[dict]) -> dict:
    ids, mask = pad_right([it["ids"] for it in items], 0)
    return {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask),
            "waves": [it["audio"] for it in items], "trp": torch.tensor([it["trp"] for it in items]),
            "label": torch.tensor([it["label"] for it in items])}


def load_utterances(segments_dir: Path, tokens_dir: Path, trp_path: Path | None,
                    n_audio_segments: int) -> tuple[SegmentStore, PackedTokens, pd.DataFrame]:
    """The segment store, the token store and their joined utterance table (see `utterance_table`)."""
    store, tokens = SegmentStore.open(segments_dir), PackedTokens(tokens_dir)
    trp = pd.read_parquet(trp_path) if trp_path is not None else None
    return store, tokens, utterance_table(store.index, tokens.index, trp, n_audio_segments)


@dataclass(frozen=True)
class Inputs:
    """What a batch holds: the text as cached hidden states (`cached_text`) or token ids, the audio as cached
    frames (`cached_audio`) or waveforms. Cached inputs are right only for encoders that are still the embed
    stage's: training decides by its schedule (`schedules.EncoderSchedule`), evaluation by the model's weights."""

    cached_text: bool
    cached_audio: bool

    @property
    def kind(self) -> str:
        """cached (both from the cache), text (token ids, cached audio) or raw (token ids and waveforms)."""
        return "cached" if self.cached_text and self.cached_audio else "text" if self.cached_audio else "raw"

    def examples(self, table: pd.DataFrame, embeddings_dir: Path, tokens: PackedTokens, store: SegmentStore,
                 model) -> torch.utils.data.Dataset:
        """The examples of `table` for `model`: cached text is cut to the span its text pooling reads
        (`span_positions`), so the model is not optional."""
        if self.kind == "raw":
            return RawExamples(table, tokens, store)
        cache = EmbeddingCache(embeddings_dir)
        if self.kind == "cached":
            return CachedExamples(table, cache, tokens, span_positions(model), model.config.uses_audio)
        return TextTrainingExamples(table, cache, tokens, model.config.uses_audio)

    def collate(self, items: list[dict]) -> dict:
        return {"cached": collate_cached, "text": collate_text_training, "raw": collate_raw}[self.kind](items)


def span_positions(model):
    """The token positions `model`'s text pooling reads (`TurnFusionModel.text_positions`) as a function of one row's
    token ids, or None when it reads them all (or no text)."""
    if not model.config.uses_text or model.config.text_span == "all":
        return None

    def positions(ids: np.ndarray) -> np.ndarray:
        row = torch.from_numpy(np.asarray(ids, dtype=np.int64))[None]
        return model.text_positions(row, torch.ones_like(row))[0].cpu().numpy()

    return positions

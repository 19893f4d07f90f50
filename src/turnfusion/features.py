"""Encoders and their inputs: building them by name/path/config, the frozen-encoder cache, and the
per-utterance examples (text context + the current and previous audio segments) that training reads."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm
from transformers import GPT2Config, GPT2Model, HubertConfig, HubertModel

from turnfusion.schema import DataError
from turnfusion.segments import SegmentStore
from turnfusion.text import PackedTokens, pad_right

log = logging.getLogger(__name__)
TEXT_CACHE, AUDIO_CACHE, AUDIO_INDEX, ENCODERS_DIR = "text.npy", "audio.npy", "audio_frames.parquet", "encoders"


def build_text_encoder(source: str, tokenizer, config: dict, teacher_dir: Path | None, n_positions: int) -> GPT2Model:
    """GPT2Model from the trained teacher (`teacher`), from config sizes (`config`), or a hub name / local path."""
    if source == "teacher":
        if teacher_dir is None or not Path(teacher_dir).exists():
            raise DataError(f"text encoder 'teacher' asked for, but {teacher_dir} does not exist (run the teacher stage)")
        return GPT2Model.from_pretrained(str(teacher_dir))
    if source == "config":
        return GPT2Model(GPT2Config(vocab_size=len(tokenizer), n_positions=n_positions, **config))
    model = GPT2Model.from_pretrained(source)
    model.resize_token_embeddings(len(tokenizer))
    return model


def build_audio_encoder(source: str, config: dict) -> HubertModel:
    """HubertModel from config sizes (`config`) or a hub name / local path (e.g. ntu-spml/distilhubert)."""
    if source == "config":
        return HubertModel(HubertConfig(**config))
    return HubertModel.from_pretrained(source)


@torch.no_grad()
def text_cache(encoder: GPT2Model, tokens: PackedTokens, batch_size: int = 64, progress: bool = True) -> np.ndarray:
    """Hidden state of every token of every context, aligned with `tokens.ids` (float16)."""
    encoder.eval()
    out = np.zeros((len(tokens.ids), encoder.config.n_embd), dtype=np.float16)
    n = len(tokens.index)
    for start in tqdm(range(0, n, batch_size), desc="text cache", disable=not progress):
        rows = list(range(start, min(n, start + batch_size)))
        ids, mask = pad_right([tokens.row(i) for i in rows], 0)
        hidden = encoder(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).last_hidden_state
        for k, i in enumerate(rows):
            offset, length = int(tokens.index.tok_offset.iat[i]), int(tokens.index.tok_length.iat[i])
            out[offset: offset + length] = hidden[k, :length].numpy()
    return out


def encode_waveforms(encoder: HubertModel, waves: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """(hidden (n, frames, dim), frame mask (n, frames)) for waveforms of any lengths (right-padded)."""
    lengths = torch.tensor([len(w) for w in waves])
    padded = torch.zeros(len(waves), int(lengths.max()))
    for k, w in enumerate(waves):
        padded[k, : len(w)] = torch.from_numpy(np.asarray(w, dtype=np.float32))
    sample_mask = (torch.arange(padded.shape[1])[None] < lengths[:, None]).long()
    device = next(encoder.parameters()).device
    hidden = encoder(input_values=padded.to(device), attention_mask=sample_mask.to(device)).last_hidden_state
    frames = encoder._get_feat_extract_output_lengths(lengths).to(device)
    return hidden, torch.arange(hidden.shape[1], device=device)[None] < frames[:, None]


def encode_segment(encoder: HubertModel, wave: np.ndarray) -> torch.Tensor:
    """Hidden frames (frames, dim) of one waveform encoded alone, so no padding enters the encoder's
    normalisation: how the training cache and the predictor both encode audio."""
    hidden, mask = encode_waveforms(encoder, [wave])
    return hidden[0, : int(mask[0].sum())]


@torch.no_grad()
def audio_cache(encoder: HubertModel, store: SegmentStore, progress: bool = True) -> tuple[np.ndarray, pd.DataFrame]:
    """Hidden frames of every segment (float16, back to back) and an index of frame offsets.

    Segments are encoded one at a time, so no padding ever enters the encoder's normalisation.
    """
    encoder.eval()
    pieces, offsets, counts = [], [], []
    offset = 0
    for i in tqdm(range(len(store.index)), desc="audio cache", disable=not progress):
        frames = encode_segment(encoder, store.waveform(i)).float().cpu().numpy().astype(np.float16)
        pieces.append(frames)
        offsets.append(offset)
        counts.append(len(frames))
        offset += len(frames)
    index = pd.DataFrame({"sentence_id": store.index.sentence_id, "frame_offset": offsets, "n_frames": counts})
    return np.concatenate(pieces), index


def write_cache(out_dir: Path, text: np.ndarray, audio: np.ndarray, audio_index: pd.DataFrame,
                text_encoder: GPT2Model, audio_encoder: HubertModel) -> None:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    np.save(out_dir / TEXT_CACHE, text)
    np.save(out_dir / AUDIO_CACHE, audio)
    audio_index.to_parquet(out_dir / AUDIO_INDEX, index=False)
    text_encoder.save_pretrained(str(out_dir / ENCODERS_DIR / "text"))
    audio_encoder.save_pretrained(str(out_dir / ENCODERS_DIR / "audio"))


def utterance_table(segments: pd.DataFrame, tokens: pd.DataFrame, trp: pd.DataFrame | None,
                    n_audio_segments: int = 3) -> pd.DataFrame:
    """One row per utterance that has both audio and text: split, label, token span, segment row,
    TRP, and `audio_rows` = segment rows of the current utterance and its predecessors (-1: none)."""
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
    video, seg_row = table.video_id.to_numpy(), table.segment_row.to_numpy()
    for i in range(len(table)):
        for k in range(n_audio_segments):
            if i - k >= 0 and video[i - k] == video[i]:
                rows[i, k] = seg_row[i - k]
    table["audio_rows"] = list(rows)
    return table


class CachedExamples(torch.utils.data.Dataset):
    """Examples from the frozen-encoder cache: hidden states, never the encoders."""

    def __init__(self, table: pd.DataFrame, cache_dir: Path):
        cache_dir = Path(cache_dir)
        for name in (TEXT_CACHE, AUDIO_CACHE, AUDIO_INDEX):
            if not (cache_dir / name).exists():
                raise DataError(f"{cache_dir / name}: embedding cache file missing (run the embed stage)")
        self.table = table.reset_index(drop=True)
        self.tok_offset, self.tok_length = self.table.tok_offset.to_numpy(), self.table.tok_length.to_numpy()
        self.audio_rows = np.stack(self.table.audio_rows.to_numpy()) if len(self.table) else np.zeros((0, 1), int)
        self.trp = np.nan_to_num(self.table.trp.to_numpy(dtype=float))
        self.labels = self.table.label.to_numpy()
        self.text = np.load(cache_dir / TEXT_CACHE, mmap_mode="r")
        self.audio = np.load(cache_dir / AUDIO_CACHE, mmap_mode="r")
        frames = pd.read_parquet(cache_dir / AUDIO_INDEX)
        self.frame_offset, self.n_frames = frames.frame_offset.to_numpy(), frames.n_frames.to_numpy()

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, i: int) -> dict:
        start = self.tok_offset[i]
        text = torch.from_numpy(np.asarray(self.text[start: start + self.tok_length[i]], np.float32))
        audio = [torch.from_numpy(np.asarray(self.audio[self.frame_offset[r]: self.frame_offset[r] + self.n_frames[r]],
                                             np.float32)) if r >= 0 else None for r in self.audio_rows[i]]
        return {"text": text, "audio": audio, "trp": float(self.trp[i]), "label": int(self.labels[i])}


def collate_cached(items: list[dict]) -> dict:
    b, s = len(items), len(items[0]["audio"])
    dt = items[0]["text"].shape[1]
    da = next((a.shape[1] for it in items for a in it["audio"] if a is not None), 1)
    t_len = max(len(it["text"]) for it in items)
    f_len = max([len(a) for it in items for a in it["audio"] if a is not None] or [1])
    text, text_mask = torch.zeros(b, t_len, dt), torch.zeros(b, t_len, dtype=torch.bool)
    audio, audio_mask = torch.zeros(b, s, f_len, da), torch.zeros(b, s, f_len, dtype=torch.bool)
    for k, it in enumerate(items):
        text[k, : len(it["text"])] = it["text"]
        text_mask[k, : len(it["text"])] = True
        for j, a in enumerate(it["audio"]):
            if a is not None:
                audio[k, j, : len(a)] = a
                audio_mask[k, j, : len(a)] = True
    return {"text_hidden": text, "text_mask": text_mask, "audio_hidden": audio, "audio_mask": audio_mask,
            "trp": torch.tensor([it["trp"] for it in items]), "label": torch.tensor([it["label"] for it in items])}


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


def encode_raw_batch(model, batch: dict, device, encode_audio=None) -> dict:
    """Run the model's encoders on a raw batch: the same hidden-state batch that the cache gives.

    `encode_audio` (list of waveforms -> (hidden, frame mask)) defaults to `model.encode_audio`.
    """
    out = {"trp": batch["trp"].to(device), "label": batch["label"].to(device)}
    if model.config.uses_text:
        ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
        out["text_hidden"], out["text_mask"] = model.encode_text(ids, mask), mask.bool()
    if model.config.uses_audio:
        waves = batch["waves"]
        s = len(waves[0])
        flat = [w for item in waves for w in item if w is not None]
        hidden, frame_mask = (encode_audio or model.encode_audio)(flat)
        b, f, d = len(waves), hidden.shape[1], hidden.shape[2]
        audio = torch.zeros(b, s, f, d, device=device, dtype=hidden.dtype)
        audio_mask = torch.zeros(b, s, f, dtype=torch.bool, device=device)
        k = 0
        for i, item in enumerate(waves):
            for j, w in enumerate(item):
                if w is not None:
                    audio[i, j], audio_mask[i, j] = hidden[k], frame_mask[k]
                    k += 1
        out["audio_hidden"], out["audio_mask"] = audio, audio_mask
    return out


def load_utterances(segments_dir: Path, tokens_dir: Path, trp_path: Path | None,
                    n_audio_segments: int = 3) -> tuple[SegmentStore, PackedTokens, pd.DataFrame]:
    """The segment store, the token store and their joined utterance table (see `utterance_table`)."""
    store, tokens = SegmentStore.open(segments_dir), PackedTokens(tokens_dir)
    trp = pd.read_parquet(trp_path) if trp_path is not None else None
    return store, tokens, utterance_table(store.index, tokens.index, trp, n_audio_segments)


def examples_for(table: pd.DataFrame, encoders: str, embeddings_dir: Path, tokens: PackedTokens,
                 store: SegmentStore) -> torch.utils.data.Dataset:
    """Cached hidden states when the encoders stay frozen, raw token ids and waveforms otherwise."""
    if encoders == "frozen":
        return CachedExamples(table, embeddings_dir)
    return RawExamples(table, tokens, store)

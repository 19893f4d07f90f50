"""Stage `embed`: run the frozen encoders once and cache their hidden states for every context token and
every audio segment (float16), with the encoders themselves, so training with frozen encoders never runs
them again. `EmbeddingCache` reads what it writes."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm
from transformers import GPT2Model, HubertModel

from turnfusion.encoders import build_audio_encoder, build_text_encoder
from turnfusion.models.encoding import encode_segment
from turnfusion.schema import DataError
from turnfusion.segment import SegmentStore
from turnfusion.tokenize import PackedTokens, pad_right

if TYPE_CHECKING:
    from turnfusion.config import ModelConfig

TEXT_CACHE, AUDIO_CACHE, AUDIO_INDEX, ENCODERS_DIR = "text.npy", "audio.npy", "audio_frames.parquet", "encoders"


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


@torch.no_grad()
def audio_cache(encoder: HubertModel, store: SegmentStore, progress: bool = True) -> tuple[np.ndarray, pd.DataFrame]:
    """Hidden frames of every segment (float16, back to back), each segment encoded alone, and an index of
    frame offsets."""
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


def embed(tokens: PackedTokens, store: SegmentStore, out_dir: Path, cfg: ModelConfig, max_length: int,
          teacher_dir: Path, audio_encoder_dir: Path) -> dict:
    """The embed stage: build the encoders as `cfg` says, cache their hidden states in `out_dir`; returns a report."""
    torch.manual_seed(cfg.seed)  # encoders built from config get the same initial weights every run
    text_encoder = build_text_encoder(cfg.text_encoder, tokens.tokenizer(), cfg.text_config, teacher_dir,
                                      max_length + 1)
    audio_encoder = build_audio_encoder(cfg.audio_encoder, cfg.audio_config, audio_encoder_dir)
    text = text_cache(text_encoder, tokens)
    audio, audio_index = audio_cache(audio_encoder, store)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    np.save(out_dir / TEXT_CACHE, text)
    np.save(out_dir / AUDIO_CACHE, audio)
    audio_index.to_parquet(out_dir / AUDIO_INDEX, index=False)
    text_encoder.save_pretrained(str(out_dir / ENCODERS_DIR / "text"))
    audio_encoder.save_pretrained(str(out_dir / ENCODERS_DIR / "audio"))
    return {"text_tokens": len(text), "text_dim": text.shape[1], "audio_frames": len(audio),
            "audio_dim": audio.shape[1], "cache_mb": round((text.nbytes + audio.nbytes) / 2**20, 1)}


def load_encoders(cache_dir: Path) -> tuple[GPT2Model, HubertModel]:
    """The encoders the cache was made with."""
    encoders = Path(cache_dir) / ENCODERS_DIR
    return GPT2Model.from_pretrained(str(encoders / "text")), HubertModel.from_pretrained(str(encoders / "audio"))


class EmbeddingCache:
    """The embed stage's output: token hidden states aligned with the token store, segment frames by index row."""

    def __init__(self, cache_dir: Path | str):
        cache_dir = Path(cache_dir)
        for name in (TEXT_CACHE, AUDIO_CACHE, AUDIO_INDEX):
            if not (cache_dir / name).exists():
                raise DataError(f"{cache_dir / name}: embedding cache file missing (run the embed stage)")
        self.text = np.load(cache_dir / TEXT_CACHE, mmap_mode="r")
        self.audio = np.load(cache_dir / AUDIO_CACHE, mmap_mode="r")
        frames = pd.read_parquet(cache_dir / AUDIO_INDEX)
        self.frame_offset, self.n_frames = frames.frame_offset.to_numpy(), frames.n_frames.to_numpy()

    def text_hidden(self, offset: int, length: int) -> torch.Tensor:
        return torch.from_numpy(np.asarray(self.text[offset: offset + length], np.float32))

    def segment_frames(self, row: int) -> torch.Tensor:
        """Frames of the segment at row `row` of the segment store (as float32)."""
        start = self.frame_offset[row]
        return torch.from_numpy(np.asarray(self.audio[start: start + self.n_frames[row]], np.float32))

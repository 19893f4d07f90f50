"""The readers of what the data stages write, apart from the code that writes it (a stage that only reads a
store does not depend on how it was made):

- `SegmentStore`: the segment stage's packed audio (`audio.npy`, int16 PCM back to back), its index
  (`segments.parquet`: conversation order, `offset` / `n_samples`, split, slices) and the audio policy it was cut
  with (`audio_policy.json`).
- `PackedTokens`: the tokenize stage's ids (`ids.npy`, int32 back to back), index and tokenizer (and the whole
  processor config that made them, `preprocessor_config.json`: `processing.ProcessorConfig.of_token_store`).
- `EmbeddingCache`: the embed stage's hidden states per context token and per audio frame (float16).

Each reads rows from disk when asked for (`arrays.NpyRows`), never the whole store into memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from turnfusion.arrays import NpyRows
from turnfusion.choices import INPUT_FORMS
from turnfusion.errors import DataError
from turnfusion.json_files import AUDIO_POLICY_FILE, PROCESSOR_FILE, json_object

SEGMENT_AUDIO, SEGMENT_INDEX = "audio.npy", "segments.parquet"
TOKEN_IDS, TOKEN_INDEX, TOKENIZER_DIR = "ids.npy", "index.parquet", "tokenizer"
TEXT_CACHE, AUDIO_CACHE, AUDIO_INDEX, ENCODERS_DIR = "text.npy", "audio.npy", "audio_frames.parquet", "encoders"


def read_audio_policy(path: Path) -> dict:
    """A segment store's audio policy file (JSON, read with bounds)."""
    return json_object(Path(path), "a segment store's audio policy")


def _require(directory: Path, names, what: str, stage: str) -> None:
    for name in names:
        if not (directory / name).exists():
            raise DataError(f"{directory / name}: {what} file missing (run the {stage} stage)")


@dataclass
class SegmentStore:
    audio: NpyRows | np.ndarray  # int16, all segments back to back (read from disk when asked for)
    index: pd.DataFrame
    sample_rate: int
    directory: Path

    @classmethod
    def open(cls, directory: Path | str) -> SegmentStore:
        directory = Path(directory)
        _require(directory, (SEGMENT_AUDIO, SEGMENT_INDEX, AUDIO_POLICY_FILE), "segment store", "segment")
        index = pd.read_parquet(directory / SEGMENT_INDEX)
        return cls(NpyRows(directory / SEGMENT_AUDIO), index, int(index["sample_rate"].iat[0]), directory)

    def audio_policy(self) -> dict:
        """The audio fields of the processor the store was cut with (`processing.AUDIO_POLICY_FILE`)."""
        return read_audio_policy(self.directory / AUDIO_POLICY_FILE)

    def waveform(self, row: int) -> np.ndarray:
        """Float32 waveform of the segment at index position `row`."""
        offset, n = int(self.index["offset"].iat[row]), int(self.index["n_samples"].iat[row])
        return np.asarray(self.audio[offset: offset + n], dtype=np.float32) / 32768.0

    def waveforms(self, rows) -> StoreWaveforms:
        """The segments at `rows`, read from disk when indexed (never all in memory)."""
        return StoreWaveforms(self, np.asarray(rows))


@dataclass
class StoreWaveforms(Sequence):
    store: SegmentStore
    rows: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, k: int) -> np.ndarray:
        return self.store.waveform(int(self.rows[k]))


class PackedTokens:
    """Reads the tokenize stage's output: the tokenizer, the index and each row's ids."""

    def __init__(self, directory: Path | str):
        directory = Path(directory)
        _require(directory, (TOKEN_IDS, TOKEN_INDEX), "token store", "tokenize")
        self.directory = directory
        self.ids = np.load(directory / TOKEN_IDS, mmap_mode="r")
        self.index = pd.read_parquet(directory / TOKEN_INDEX)

    def tokenizer(self):
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(self.directory / TOKENIZER_DIR))

    def input_form(self) -> str:
        """The form of the contexts (`text.words`: context or pair), from the processor config the tokenize stage
        wrote beside them (a store without one was made in the context form)."""
        path = self.directory / PROCESSOR_FILE
        form = json_object(path).get("input_form", "context") if path.is_file() else "context"
        if form not in INPUT_FORMS:
            raise DataError(f"{path}: input_form must be one of {list(INPUT_FORMS)}, got {form!r:.40}")
        return form

    def row(self, i: int) -> np.ndarray:
        offset, length = int(self.index["tok_offset"].iat[i]), int(self.index["tok_length"].iat[i])
        return self.ids[offset: offset + length]


class EmbeddingCache:
    """The embed stage's output: token hidden states aligned with the token store, segment frames by index row."""

    def __init__(self, cache_dir: Path | str):
        cache_dir = Path(cache_dir)
        _require(cache_dir, (TEXT_CACHE, AUDIO_CACHE, AUDIO_INDEX), "embedding cache", "embed")
        self.text, self.audio = NpyRows(cache_dir / TEXT_CACHE), NpyRows(cache_dir / AUDIO_CACHE)
        frames = pd.read_parquet(cache_dir / AUDIO_INDEX)
        self.frame_offset, self.n_frames = frames.frame_offset.to_numpy(), frames.n_frames.to_numpy()

    def text_hidden(self, offset: int, length: int):
        """Hidden states (length, dim) of a row's tokens, as a float32 tensor."""
        import torch

        return torch.from_numpy(np.asarray(self.text[offset: offset + length], np.float32))

    def segment_frames(self, row: int):
        """Frames of the segment at row `row` of the segment store, as a float32 tensor."""
        import torch

        start = self.frame_offset[row]
        return torch.from_numpy(np.asarray(self.audio[start: start + self.n_frames[row]], np.float32))

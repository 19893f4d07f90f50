"""Text path: normalisation, TurnGPT-style dialogue context, tokenizer training/loading, packed token ids.

A context is the current utterance and its (up to) two predecessors in the same conversation, each
opened by its speaker token, with the turn-shift token between utterances whose speakers differ:

    <speaker0> so i went there <ts> <speaker1> did you <speaker1> what was it like
"""

from __future__ import annotations

import logging
import re
import string
from pathlib import Path

import numpy as np
import pandas as pd

from turnfusion.schema import DataError

log = logging.getLogger(__name__)

TURN_SHIFT = "<ts>"
SPEAKER_TOKENS = ("<speaker0>", "<speaker1>")
PAD, EOS = "<pad>", "<|endoftext|>"
SPECIAL_TOKENS = [EOS, PAD, TURN_SHIFT, *SPEAKER_TOKENS]
PUNCTUATION_POLICIES = ("strip", "keep")
IDS_FILE, INDEX_FILE, TOKENIZER_DIR = "ids.npy", "index.parquet", "tokenizer"


def normalize(text: str, punctuation: str = "strip") -> str:
    """Lower case, collapse white space; `punctuation="strip"` removes punctuation except in-word ' and -."""
    if punctuation not in PUNCTUATION_POLICIES:
        raise ValueError(f"punctuation policy must be one of {PUNCTUATION_POLICIES}, got {punctuation!r}")
    text = text.lower()
    if punctuation == "strip":
        text = re.sub(rf"[{re.escape(string.punctuation.replace(chr(39), '').replace('-', ''))}]", " ", text)
        text = re.sub(r"(?<!\w)['-]|['-](?!\w)", " ", text)
    return " ".join(text.split())


def speaker_token(speaker) -> str:
    try:
        return SPEAKER_TOKENS[int(speaker)]
    except (ValueError, IndexError, TypeError):
        raise DataError(f"speaker must be 0 or 1, got {speaker}") from None


def utterance_piece(text: str, speaker, previous_speaker=None) -> str:
    """One utterance as it appears in a context: a turn-shift token if the speaker changed, speaker, words."""
    shift = f"{TURN_SHIFT} " if previous_speaker is not None and int(previous_speaker) != int(speaker) else ""
    return f"{shift}{speaker_token(speaker)} {text}"


def build_contexts(table: pd.DataFrame, n_previous: int = 2, punctuation: str = "strip") -> pd.DataFrame:
    """Context string for every utterance of `table` (columns video_id, position, text, speaker).

    Context never crosses conversations; the first utterances of a conversation have fewer predecessors.
    Rows with empty or NaN text are dropped and counted (returned frame has `n_previous_used`); the
    caller reports the count. Returns the table in conversation order with a `context` column.
    """
    table = table.sort_values(["video_id", "position"], kind="stable").reset_index(drop=True)
    texts = table["text"].map(lambda t: normalize(t, punctuation) if isinstance(t, str) else "")
    empty = texts == ""
    if empty.any():
        log.warning("%d utterance(s) with empty or NaN text skipped, e.g. %s", int(empty.sum()),
                    table.loc[empty, "sentence_id"].iloc[0])
    table, texts = table[~empty].reset_index(drop=True), texts[~empty].reset_index(drop=True)
    contexts, used = [], []
    video, speakers = table["video_id"].to_numpy(), table["speaker"].to_numpy()
    for i in range(len(table)):
        first = i
        while first > 0 and i - first < n_previous and video[first - 1] == video[i]:
            first -= 1
        pieces = [utterance_piece(texts[j], speakers[j], speakers[j - 1] if j > first else None)
                  for j in range(first, i + 1)]
        contexts.append(" ".join(pieces))
        used.append(i - first)
    return table.assign(context=contexts, n_previous_used=used, n_empty_text=int(empty.sum()))


def train_tokenizer(texts: list[str], vocab_size: int, out_dir: Path | None = None):
    """Byte-level BPE trained on `texts` (the training split only), as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    core.train_from_iterator(texts, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, eos_token=EOS, bos_token=EOS, unk_token=EOS,
                                        pad_token=PAD, additional_special_tokens=[TURN_SHIFT, *SPEAKER_TOKENS],
                                        truncation_side="left", padding_side="right")
    return _configure(tokenizer, out_dir)


def load_tokenizer(name_or_path: str, out_dir: Path | None = None):
    """A pretrained tokenizer by hub name or local path (e.g. distilgpt2), with our special tokens added."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(name_or_path, truncation_side="left", padding_side="right")
    tokenizer.add_special_tokens({"additional_special_tokens": [TURN_SHIFT, *SPEAKER_TOKENS]})
    if tokenizer.pad_token is None:
        tokenizer.add_special_tokens({"pad_token": PAD})
    return _configure(tokenizer, out_dir)


def _configure(tokenizer, out_dir: Path | None):
    # Left truncation: the end of the current utterance carries the cues. Right padding: GPT-2 has
    # absolute positions. Both are constructor arguments, so save_pretrained records them.
    if out_dir is not None:
        tokenizer.save_pretrained(str(out_dir))
    return tokenizer


def encode_contexts(tokenizer, contexts: list[str], max_length: int) -> list[list[int]]:
    """Token ids of each context, left-truncated to `max_length` (the last tokens are kept)."""
    return tokenizer(contexts, truncation=True, max_length=max_length, add_special_tokens=False)["input_ids"]


def write_packed(out_dir: Path, table: pd.DataFrame, ids: list[list[int]]) -> None:
    """One int32 array with all ids back to back, and an index with `tok_offset` and `tok_length` per row."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    lengths = np.array([len(x) for x in ids], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    np.save(out_dir / IDS_FILE, np.concatenate([np.asarray(x, dtype=np.int32) for x in ids]))
    table.assign(tok_offset=offsets, tok_length=lengths).to_parquet(out_dir / INDEX_FILE, index=False)


class PackedTokens:
    """Reads the tokenize stage's output: ids per row, padded batches with attention masks."""

    def __init__(self, directory: Path | str):
        directory = Path(directory)
        for name in (IDS_FILE, INDEX_FILE):
            if not (directory / name).exists():
                raise DataError(f"{directory / name}: token store file missing (run the tokenize stage)")
        self.directory = directory
        self.ids = np.load(directory / IDS_FILE)
        self.index = pd.read_parquet(directory / INDEX_FILE)

    def tokenizer(self):
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(self.directory / TOKENIZER_DIR))

    def row(self, i: int) -> np.ndarray:
        offset, length = int(self.index["tok_offset"].iat[i]), int(self.index["tok_length"].iat[i])
        return self.ids[offset: offset + length]

    def batch(self, rows, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
        """Right-padded (ids, attention_mask) for `rows`."""
        return pad_right([self.row(i) for i in rows], pad_id)


def pad_right(seqs: list, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids, attention_mask) of shape (len(seqs), longest), padded on the right."""
    width = max(len(s) for s in seqs)
    ids = np.full((len(seqs), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(seqs), width), dtype=np.int64)
    for k, s in enumerate(seqs):
        ids[k, : len(s)] = s
        mask[k, : len(s)] = 1
    return ids, mask


def tokenize_table(table: pd.DataFrame, out_dir: Path, tokenizer_spec: str, vocab_size: int, max_length: int,
                   n_previous: int = 2, punctuation: str = "strip") -> dict:
    """Contexts, tokenizer and packed ids for a segment index (video_id, position, text, speaker, split).

    `tokenizer_spec`: "train" fits a byte-level BPE on the training split only; anything else is a
    hub name or local path. Writes `out_dir` and returns a report of counts.
    """
    table = build_contexts(table, n_previous, punctuation)
    out_dir = Path(out_dir)
    if tokenizer_spec == "train":
        train_texts = [normalize(t, punctuation) for t in table.loc[table.split == "train", "text"]]
        tokenizer = train_tokenizer(train_texts, vocab_size, out_dir / TOKENIZER_DIR)
    else:
        tokenizer = load_tokenizer(tokenizer_spec, out_dir / TOKENIZER_DIR)
    full = encode_contexts(tokenizer, table.context.tolist(), max_length=10**9)
    ids = [x[-max_length:] for x in full]
    n_empty = int(table.n_empty_text.iat[0]) if len(table) else 0
    write_packed(out_dir, table.drop(columns=["n_empty_text"]), ids)
    lengths = np.array([len(x) for x in ids])
    return {"utterances": len(table), "skipped_empty_text": n_empty, "vocab_size": len(tokenizer),
            "mean_tokens": round(float(lengths.mean()), 2), "max_tokens": int(lengths.max()),
            "truncated": int(sum(len(f) > max_length for f in full)),
            "with_2_previous": int((table.n_previous_used == 2).sum())}

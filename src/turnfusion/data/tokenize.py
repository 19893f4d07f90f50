"""Stage `tokenize`: the tokenizer (trained on the training split only, or loaded by name/path), each
context's token ids (left-truncated) and the packed token store that the teacher and the models read."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from turnfusion.data.stores import TOKEN_IDS as IDS_FILE
from turnfusion.data.stores import TOKEN_INDEX as INDEX_FILE
from turnfusion.data.stores import TOKENIZER_DIR
from turnfusion.errors import DataError
from turnfusion.schema import corpus_has_words
from turnfusion.serving.processing import ProcessorConfig
from turnfusion.text.contexts import build_contexts
from turnfusion.text.words import (
    EOS,
    PAD,
    SPEAKER_TOKENS,
    SPECIAL_TOKENS,
    TURN_SHIFT,
    encode_contexts,
    normalize,
    pair_separator_id,
)

if TYPE_CHECKING:
    from turnfusion.config import TextConfig



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
    tokenizer.backend_tokenizer.no_padding()  # saved without a hub file's fixed padding (`encode_contexts`)
    tokenizer.backend_tokenizer.no_truncation()
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


def write_packed(out_dir: Path, table: pd.DataFrame, ids: list[list[int]]) -> None:
    """One int32 array with all ids back to back, and an index with `tok_offset` and `tok_length` per row."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    lengths = np.array([len(x) for x in ids], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    np.save(out_dir / IDS_FILE, np.concatenate([np.asarray(x, dtype=np.int32) for x in ids]))
    table.assign(tok_offset=offsets, tok_length=lengths).to_parquet(out_dir / INDEX_FILE, index=False)


def tokenize_table(table: pd.DataFrame, out_dir: Path, cfg: TextConfig, audio_policy: dict | None = None) -> dict:
    """Contexts, tokenizer and packed ids for a segment index (video_id, position, text, speaker, split).

    `cfg.tokenizer`: "train" fits a byte-level BPE on the training split only; anything else is a
    hub name or local path. A table without any words (`schema.corpus_has_words`) gives contexts of the speaker
    turns alone. With the segment store's `audio_policy`, the whole processor config is built, the contexts made
    with it, and it is written into the store (`ProcessorConfig.of_token_store`), whence training copies it into the
    model folder. Writes `out_dir` and returns a report of counts.
    """
    words = corpus_has_words(table)
    processor = ProcessorConfig.from_params(audio_policy, cfg, words, "segment store's audio_policy.json + text "
                                            "params") if audio_policy is not None else None
    table = build_contexts(table, cfg.n_previous, cfg.punctuation, cfg.trim_overlap, words, cfg.input_form)
    out_dir = Path(out_dir)
    if cfg.tokenizer == "train":
        train_texts = [normalize(t, cfg.punctuation) if isinstance(t, str) else ""  # an empty cell reads as NaN
                       for t in table.loc[table.split == "train", "text"]]
        if not train_texts:
            raise DataError("text.tokenizer: train asks for a tokenizer fitted on the training split, which has "
                            "no utterance (give the source a training split, or a tokenizer by name/path)")
        tokenizer = train_tokenizer(train_texts, cfg.vocab_size, out_dir / TOKENIZER_DIR)
    else:
        tokenizer = load_tokenizer(cfg.tokenizer, out_dir / TOKENIZER_DIR)
    if cfg.input_form == "pair" and pair_separator_id(tokenizer) is None:
        raise DataError(f"params.yaml: text.input_form: pair needs a tokenizer with a segment-pair template "
                        f"([CLS] A [SEP] B [SEP]: a BERT-type one); text.tokenizer {cfg.tokenizer!r} has none")
    ids, n_truncated = encode_contexts(tokenizer, table.context.tolist(), cfg.max_length, cfg.input_form)
    n_empty = int(table.n_empty_text.iat[0]) if len(table) else 0
    write_packed(out_dir, table.drop(columns=["n_empty_text"]), ids)
    if processor is not None:
        processor.save_pretrained(out_dir)
    lengths = np.array([len(x) for x in ids])
    return {"utterances": len(table), "words": words, "skipped_empty_text": n_empty, "vocab_size": len(tokenizer),
            "mean_tokens": round(float(lengths.mean()), 2), "max_tokens": int(lengths.max()),
            "truncated": n_truncated,
            "with_2_previous": int((table.n_previous_used == 2).sum())}

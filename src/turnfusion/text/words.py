# SPDX-License-Identifier: Apache-2.0
"""Text of a dialogue: normalisation and the TurnGPT-style context of each utterance.

A context is the current utterance and its history (`history`: up to `n_previous` utterances of the same
conversation that ended before it started, oldest first), each opened by its speaker token, with the
turn-shift token wherever the speaker changes:

    <speaker0> so i went there <ts> <speaker1> did you <speaker1> what was it like

Tokens: `encode_contexts` keeps the end of each context (left truncation), `pad_right` pads a batch.

`<ts>` is what a live system observes (who spoke next), never a label: the one context rule of the tokenize
stage, `predict`, `predict-csv` and `TurnSession` (`processing` applies it). Pandas-free at import.

Windowed annotations repeat words: a row often starts with the previous row's last words, or contains it.
With `trim_overlap`, each previous utterance in a context loses the words its successor repeats, so the
context shows what was said once and not how the annotation windows were cut.
"""

from __future__ import annotations

import logging
import re
import string

import numpy as np

from turnfusion.errors import DataError

log = logging.getLogger(__name__)

TURN_SHIFT = "<ts>"
SPEAKER_TOKENS = ("<speaker0>", "<speaker1>")
PAD, EOS = "<pad>", "<|endoftext|>"
SPECIAL_TOKENS = [EOS, PAD, TURN_SHIFT, *SPEAKER_TOKENS]
PUNCTUATION_POLICIES = ("strip", "keep")


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


MIN_REPEAT_WORDS = 2  # a shorter suffix/prefix match ("i", "and") is as likely chance as a repeated window


def trim_repeated(previous: str, following: str) -> str:
    """`previous` without the words `following` repeats: nothing if `following` contains it; the words before
    `following` if `previous` contains it; else without its longest suffix (of at least MIN_REPEAT_WORDS words)
    that `following` starts with. Both normalised. Linear in the words (Knuth-Morris-Pratt): texts from strangers
    may be long."""
    prev, nxt = previous.split(), following.split()
    if len(prev) >= MIN_REPEAT_WORDS and find_words(nxt, prev) >= 0:
        return ""
    inside = find_words(prev, nxt)
    if inside >= 0 and len(nxt) >= MIN_REPEAT_WORDS:
        return " ".join(prev[:inside])
    # the longest prefix of `nxt` that ends `prev`: the failure function over nxt + a separator + prev
    k = _prefix_function([*nxt, None, *prev])[-1] if prev and nxt else 0
    return " ".join(prev[:-k]) if k >= MIN_REPEAT_WORDS else previous


def _prefix_function(items: list) -> list[int]:
    """For each position, the length of the longest proper prefix of `items` that ends there (KMP)."""
    table = [0] * len(items)
    for i in range(1, len(items)):
        k = table[i - 1]
        while k and items[i] != items[k]:
            k = table[k - 1]
        table[i] = k + (items[i] == items[k])
    return table


def find_words(haystack: list[str], needle: list[str]) -> int:
    """Start of the last occurrence of the word list `needle` in `haystack`, or -1 (linear: KMP)."""
    n = len(needle)
    if n == 0 or n > len(haystack):
        return len(haystack) if n == 0 else -1
    table = _prefix_function([*needle, None, *haystack])
    ends = [i for i in range(2 * n, len(table)) if table[i] == n]
    return ends[-1] - 2 * n if ends else -1


def context_string(texts: list[str], speakers: list, trim_overlap: bool, words: bool = True) -> str:
    """The context of the last of `texts` (normalised, oldest first, each with its speaker): a `<ts>` between two
    pieces where the speaker changes. The one context builder of training and prediction. Without `words` (a corpus
    without transcripts) the texts are not read: the context is the speaker turns alone."""
    if not words:
        texts = [""] * len(texts)
    elif trim_overlap:
        texts = [trim_repeated(t, texts[k + 1]) for k, t in enumerate(texts[:-1])] + [texts[-1]]
    pieces, previous = [], None
    for text, speaker in zip(texts, speakers, strict=True):
        if words and not text:  # wholly repeated by its successor
            continue
        token = speaker_token(speaker)
        piece = f"{token} {text}" if text else token
        pieces.append(f"{TURN_SHIFT} {piece}" if previous not in (None, token) else piece)
        previous = token
    return " ".join(pieces)


def encode_contexts(tokenizer, contexts: list[str], max_length: int) -> tuple[list[list[int]], int]:
    """(token ids of each context, left-truncated to its last `max_length` tokens; how many were truncated).
    `tokenizer`: a `tokenizers.Tokenizer` or a transformers fast tokenizer (its backend is used)."""
    backend = getattr(tokenizer, "backend_tokenizer", tokenizer)
    full = [e.ids for e in backend.encode_batch(contexts, add_special_tokens=False)]
    return [ids[-max_length:] for ids in full], sum(len(ids) > max_length for ids in full)


def pad_right(seqs: list, pad_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(ids, attention_mask) of shape (len(seqs), longest, at least 1), padded on the right (GPT-2 has absolute
    positions)."""
    width = max(1, max(len(s) for s in seqs))
    ids = np.full((len(seqs), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(seqs), width), dtype=np.int64)
    for k, s in enumerate(seqs):
        ids[k, : len(s)] = s
        mask[k, : len(s)] = 1
    return ids, mask

# SPDX-License-Identifier: Apache-2.0
"""Text of a dialogue: normalisation and the TurnGPT-style context of each utterance.

A context is the current utterance and its history (`history`: up to `n_previous` utterances of the same
conversation that ended before it started, oldest first), each opened by its speaker token, with the
turn-shift token wherever the speaker changes:

    <speaker0> so i went there <ts> <speaker1> did you <speaker1> what was it like

With `form="pair"` (`text.input_form`, for BERT-type encoders, whose vocabulary has no speaker tokens) the same
history and utterance are a segment pair: segment A is the history in plain words, each utterance opened by a mark
relative to the current speaker (`you:` for the current speaker's own, `them:` for the other's: the same turn-shift
information as `<ts>`, in words the encoder's vocabulary has), segment B the current utterance's words alone:

    [CLS] them: so i went there you: did you [SEP] what was it like [SEP]

so that the encoder sees where the utterance under decision starts (B's segment ids) and a pooling can read it alone
(`models.pooling.span_mask`). The context string holds the two segments with `PAIR_SEPARATOR` between them.

Tokens: `encode_contexts` keeps the end of each context (left truncation; a pair loses the start of its history
first), `pad_right` pads a batch.

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
PAIR_SEPARATOR = "\n"  # between a pair's segments in its context string: normalised words hold no line break
OWN_MARK, OTHER_MARK = "you:", "them:"  # a pair's history: an utterance of the current speaker, of the other


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


def context_string(texts: list[str], speakers: list, trim_overlap: bool, words: bool = True,
                   form: str = "context") -> str:
    """The context of the last of `texts` (normalised, oldest first, each with its speaker): a `<ts>` between two
    pieces where the speaker changes; with `form="pair"`, the history and the current utterance as a segment pair
    (`pair_string`). The one context builder of training and prediction. Without `words` (a corpus without
    transcripts) the texts are not read: the context is the speaker turns alone."""
    if not words:
        texts = [""] * len(texts)
    elif trim_overlap:
        texts = [trim_repeated(t, texts[k + 1]) for k, t in enumerate(texts[:-1])] + [texts[-1]]
    if form == "pair":
        return pair_string(texts, [speaker_token(s) for s in speakers], words)
    pieces, previous = [], None
    for text, speaker in zip(texts, speakers, strict=True):
        if words and not text:  # wholly repeated by its successor
            continue
        token = speaker_token(speaker)
        piece = f"{token} {text}" if text else token
        pieces.append(f"{TURN_SHIFT} {piece}" if previous not in (None, token) else piece)
        previous = token
    return " ".join(pieces)


def pair_string(texts: list[str], speakers: list[str], words: bool) -> str:
    """Segment A (the history, each utterance opened by `OWN_MARK` or `OTHER_MARK` relative to the current speaker,
    the last of `speakers`), `PAIR_SEPARATOR`, segment B (the current utterance's words)."""
    history = [f"{OWN_MARK if speaker == speakers[-1] else OTHER_MARK} {text}".rstrip()
               for text, speaker in zip(texts[:-1], speakers[:-1], strict=True) if text or not words]
    return f"{' '.join(history)}{PAIR_SEPARATOR}{texts[-1]}"


def encode_contexts(tokenizer, contexts: list[str], max_length: int,
                    form: str = "context") -> tuple[list[list[int]], int]:
    """(token ids of each context, left-truncated to its last `max_length` tokens; how many were truncated).
    `tokenizer`: a `tokenizers.Tokenizer` or a transformers fast tokenizer (its backend is used). A pair
    (`form="pair"`) is put together by the tokenizer's own pair template ([CLS] A [SEP] B [SEP]); what does not fit
    leaves from the start of A first, then from the start of B."""
    backend = getattr(tokenizer, "backend_tokenizer", tokenizer)
    # ours are the only truncation and padding: a hub tokenizer.json may pad every input to 128 tokens
    # (all-MiniLM-L6-v2's does), and its pads would be the end that left truncation keeps
    backend.no_padding()
    backend.no_truncation()
    if form == "pair":
        return encode_pairs(backend, contexts, max_length)
    full = [e.ids for e in backend.encode_batch(contexts, add_special_tokens=False)]
    return [ids[-max_length:] for ids in full], sum(len(ids) > max_length for ids in full)


def encode_pairs(backend, contexts: list[str], max_length: int) -> tuple[list[list[int]], int]:
    room = max_length - backend.num_special_tokens_to_add(True)
    if room < 1:
        raise DataError(f"max_length {max_length}: a pair needs room for its "
                        f"{backend.num_special_tokens_to_add(True)} special tokens and a word")
    halves = [context.split(PAIR_SEPARATOR) for context in contexts]
    if any(len(h) != 2 for h in halves):
        raise DataError("a pair-form context holds exactly one segment separator (text.input_form: pair)")
    first = backend.encode_batch([h[0] for h in halves], add_special_tokens=False)
    second = backend.encode_batch([h[1] for h in halves], add_special_tokens=False)
    ids, truncated = [], 0
    for a, b in zip(first, second, strict=True):
        truncated += len(a.ids) + len(b.ids) > room
        b.truncate(room, direction="left")
        a.truncate(room - len(b.ids), direction="left")
        ids.append(backend.post_process(a, b, add_special_tokens=True).ids)
    return ids, truncated


def pair_separator_id(tokenizer) -> int | None:
    """The token id a tokenizer's pair template puts between segment A and B ([SEP] of BERT's "[CLS] A [SEP] B
    [SEP]"), or None when it has no such template (byte-level BPE, GPT-2): what `text.input_form: pair` needs."""
    backend = getattr(tokenizer, "backend_tokenizer", tokenizer)
    if backend.num_special_tokens_to_add(True) <= backend.num_special_tokens_to_add(False):
        return None
    a, b = backend.encode("a", add_special_tokens=False), backend.encode("b", add_special_tokens=False)
    probe = backend.post_process(a, b, add_special_tokens=True)
    if 1 not in probe.type_ids:
        return None
    boundary = probe.type_ids.index(1) - 1  # the last token of segment A: its closing separator
    return probe.ids[boundary] if boundary > 0 and probe.ids[boundary] not in (a.ids + b.ids) else None


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

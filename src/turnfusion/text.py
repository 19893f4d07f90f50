"""Text of a dialogue: normalisation and the TurnGPT-style context of each utterance.

A context is the current utterance and its (up to) two predecessors in the same conversation, each
opened by its speaker token, with the turn-shift token between utterances whose speakers differ:

    <speaker0> so i went there <ts> <speaker1> did you <speaker1> what was it like
"""

from __future__ import annotations

import logging
import re
import string

import pandas as pd

from turnfusion.schema import DataError

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

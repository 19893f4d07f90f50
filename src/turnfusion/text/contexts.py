"""The context of every utterance of a table (the tokenize stage's input): its history (`text.history`: the rows
of the same conversation that ended before it started) and itself, as `text.words.context_string` renders them. A
module of its own so that code that only normalises words (sources, the encoders, the teacher) does not depend on
the history rule."""

from __future__ import annotations

import logging

import pandas as pd

from turnfusion.schema import conversation_order
from turnfusion.text.history import histories
from turnfusion.text.words import context_string, normalize

log = logging.getLogger(__name__)


def build_contexts(table: pd.DataFrame, n_previous: int = 2, punctuation: str = "strip",
                   trim_overlap: bool = False, words: bool = True, form: str = "context") -> pd.DataFrame:
    """Context string for every utterance of `table`, a table in the MM-F2F schema (video_id, sentence_id, text,
    start, end, speaker; a `label` is never read): its history (`history.histories`) and itself.

    Context never crosses conversations and never holds a row that ended after the current one started. Rows with
    empty or NaN text are dropped and counted (returned frame has `n_previous_used`); the caller reports the
    count. Without `words` (a corpus without transcripts, `schema.corpus_has_words`) no row is dropped and every
    context is the speaker turns alone. `form`: context or pair (`text.words.context_string`). Returns the table in
    conversation order with a `context` column.
    """
    table = conversation_order(table)
    texts = table["text"].map(lambda t: normalize(t, punctuation) if isinstance(t, str) else "")
    empty = (texts == "") & words
    if empty.any():
        log.warning("%d utterance(s) with empty or NaN text skipped, e.g. %s", int(empty.sum()),
                    table.loc[empty, "sentence_id"].iloc[0])
    table, texts = table[~empty].reset_index(drop=True), texts[~empty].tolist()
    speakers = table["speaker"].tolist()
    contexts, used = [], []
    for i, previous in enumerate(histories(table, n_previous)):
        rows = [*previous, i]
        contexts.append(context_string([texts[r] for r in rows], [speakers[r] for r in rows], trim_overlap, words,
                                       form))
        used.append(len(previous))
    return table.assign(context=contexts, n_previous_used=used, n_empty_text=int(empty.sum()))

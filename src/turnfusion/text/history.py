# SPDX-License-Identifier: Apache-2.0
"""The one history rule: which earlier utterances an utterance's input may read, as a live system would have them.

The history of an utterance is the utterances of the same conversation that ended at or before it started
(`HISTORY_TOLERANCE_S`): the `n` that ended last, in the order they ended. So the last `k` of a history of `n`
are the history of `k` (a model that reads fewer predecessors reads the same ones), and a row never reads a row
that overlaps it: in windowed annotations (MM-F2F cuts a keep window and a shift row from the same turn) its own
twin is not its history, and nothing that ends after it started can be. Labels are never read; rows that tie
on time are ordered by a hash of their content (`schema.conversation_order`), never by file order.

Used by the tokenize stage (`text.contexts.build_contexts`), the audio predecessors of training (`datasets`), and
`predict-csv` (`batch`); `predict` and `TurnSession` take a history as given (each utterance ended before the
next began).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

HISTORY_TOLERANCE_S = 0.0  # a row that ends later than the current one's start is not history, by any margin


def previous_rows(starts: np.ndarray, ends: np.ndarray, n: int) -> list[np.ndarray]:
    """For each row of one conversation (in conversation order), the positions of its history: up to `n` rows that
    ended at or before its start, the most recently ended, in the order they ended (ties: by start, then order)."""
    starts, ends = np.asarray(starts, float), np.asarray(ends, float)
    by_end = np.lexsort((np.arange(len(ends)), starts, ends))  # most recently ended last; ties in conversation order
    sorted_ends = ends[by_end]
    histories = []
    for i, start in enumerate(starts):
        if not np.isfinite(start) or n <= 0:  # a row with no start has no known past
            histories.append(by_end[:0])
            continue
        ended = by_end[: np.searchsorted(sorted_ends, start + HISTORY_TOLERANCE_S, side="right")]
        histories.append(ended[ended != i][-n:])  # never itself (a zero-length row ends at its start)
    return histories


def histories(table: pd.DataFrame, n: int) -> list[np.ndarray]:
    """For each row of `table` (columns video_id, start, end; in conversation order), the row positions of its
    history (`previous_rows`), within its own conversation."""
    result: list[np.ndarray] = [np.zeros(0, np.int64)] * len(table)
    starts, ends = table["start"].to_numpy(float), table["end"].to_numpy(float)
    for rows in pd.Series(np.arange(len(table))).groupby(table["video_id"].to_numpy(), sort=False).indices.values():
        for k, previous in zip(rows, previous_rows(starts[rows], ends[rows], n), strict=True):
            result[k] = rows[previous]
    return result

"""The utterance table schema (MM-F2F) and its validation."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

KEEP, SHIFT, BACKCHANNEL = 0, 1, 2
LABEL_NAMES = {KEEP: "keep", SHIFT: "shift", BACKCHANNEL: "backchannel"}
UTTERANCE_COLUMNS = ["video_id", "sentence_id", "text", "label", "start", "end", "speaker"]


class DataError(ValueError):
    """Input data that cannot be used; the message names the file/row and what is wrong."""


def read_utterances(path: Path | str) -> pd.DataFrame:
    """Read an utterance table in the MM-F2F schema and check its columns and label values.

    Row-level problems that a stage can skip (bad timestamps, empty text) are left to the stages,
    which count them; problems that make the whole file unusable raise DataError.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: utterance table not found")
    table = pd.read_csv(path, dtype={"video_id": str, "sentence_id": str, "text": str}, keep_default_na=False,
                        na_values=[""])
    missing = [c for c in UTTERANCE_COLUMNS if c not in table.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; expected {UTTERANCE_COLUMNS}")
    labels = pd.to_numeric(table["label"], errors="coerce")
    bad = table.index[~labels.isin(list(LABEL_NAMES))]
    if len(bad):
        row = bad[0]
        raise DataError(f"{path}: row {row + 2} ({table.at[row, 'sentence_id']}): label "
                        f"'{table.at[row, 'label']}' is not one of {sorted(LABEL_NAMES)} "
                        f"({len(bad)} bad row(s) in all)")
    table["label"] = labels.astype(int)
    for col in ("start", "end"):
        table[col] = pd.to_numeric(table[col], errors="coerce")
    dup = table["sentence_id"].duplicated()
    if dup.any():
        raise DataError(f"{path}: sentence_id {table.loc[dup, 'sentence_id'].iloc[0]!r} appears more than once")
    return table

# SPDX-License-Identifier: Apache-2.0
"""The utterance table schema (MM-F2F) and its validation."""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path

import pandas as pd

from turnfusion.choices import BACKCHANNEL, KEEP, LABEL_NAMES, SHIFT  # noqa: F401 (the schema's labels)
from turnfusion.errors import DataError, one_line
from turnfusion.names import NAME_RULE, is_name

log = logging.getLogger(__name__)

UTTERANCE_COLUMNS = ["video_id", "sentence_id", "text", "label", "start", "end", "speaker"]
CONFLICT_KEY = ["video_id", "start", "end", "speaker"]  # one window: the same audio
# optional: where a row's audio lies in its recording when not at its annotated start / end (the rehearsal speaks
# each row into a clip of its own); start / end still order the conversation
AUDIO_SPAN_COLUMNS = ["audio_start", "audio_end"]


def read_utterances(path: Path | str) -> pd.DataFrame:
    """Read an utterance table in the MM-F2F schema and check its columns and label values.

    Row-level problems that a stage can skip (bad timestamps, empty text) are left to the stages,
    which count them; problems that make the whole file unusable raise DataError.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: utterance table not found")
    if not path.is_file():
        raise DataError(f"{path}: a folder, not an utterance table")
    try:
        table = pd.read_csv(path, dtype={"video_id": str, "sentence_id": str, "text": str}, keep_default_na=False,
                            na_values=[""])
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"{path}: not a readable CSV ({one_line(exc, 200)})") from None
    missing = [c for c in UTTERANCE_COLUMNS if c not in table.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; expected {UTTERANCE_COLUMNS}")
    labels = pd.to_numeric(table["label"], errors="coerce")
    bad = table.index[~labels.isin(list(LABEL_NAMES))]
    if len(bad):
        row = bad[0]
        raise DataError(f"{path}: row {row + 2} ({table.at[row, 'sentence_id']!r:.80}): label "
                        f"'{table.at[row, 'label']}' is not one of {sorted(LABEL_NAMES)} "
                        f"({len(bad)} bad row(s) in all)")
    table["label"] = labels.astype(int)
    span = [c for c in AUDIO_SPAN_COLUMNS if c in table.columns]
    if span and len(span) < len(AUDIO_SPAN_COLUMNS):
        other = next(c for c in AUDIO_SPAN_COLUMNS if c not in span)
        raise DataError(f"{path}: column {span[0]!r} without {other!r}; give both {AUDIO_SPAN_COLUMNS} or neither")
    for col in ("start", "end", "speaker", *span):
        table[col] = pd.to_numeric(table[col], errors="coerce")
    if table["speaker"].isin([0, 1]).all():
        table["speaker"] = table["speaker"].astype(int)
    dup = table["sentence_id"].duplicated()
    if dup.any():
        raise DataError(f"{path}: sentence_id {table.loc[dup, 'sentence_id'].iloc[0]!r} appears more than once")
    check_video_ids(table, path)
    problems = pd.Series([row_problem(row) for row in table.itertuples(index=False)], index=table.index, dtype=str)
    for reason, rows in problems[problems != ""].groupby(problems).groups.items():
        log.warning("%s: %d row(s) with %s, skipped where used, e.g. row %d (%s)", path, len(rows), reason,
                    rows[0] + 2, table.at[rows[0], "sentence_id"])
    return table


def audio_span(row) -> tuple[float, float]:
    """(start, end) in seconds of a row's audio in its recording: `audio_start` / `audio_end` where the table
    has them, else the annotated start / end."""
    if hasattr(row, "audio_start"):
        return row.audio_start, row.audio_end
    return row.start, row.end


def check_video_ids(table: pd.DataFrame, path: Path | str) -> None:
    """A `video_id` names a recording and becomes a file name (`<video_id>.flac`): one that is not a name
    (`names.NAME_RULE`: `../x`, `/etc/x`, `%(id)s`) is a DataError naming the file and row. An empty one is a
    counted skip (`row_problem`)."""
    bad = table.index[table.video_id.map(lambda v: is_video_id(v) and not is_name(v)).astype(bool)]
    if len(bad):
        row = bad[0]
        raise DataError(f"{path}: row {row + 2} ({table.at[row, 'sentence_id']!r:.80}): video_id "
                        f"{table.at[row, 'video_id']!r:.80} is not a name ({NAME_RULE}; {len(bad)} such row(s))")


def is_video_id(value) -> bool:
    """Whether a `video_id` cell names a recording (a non-blank string; pandas reads an empty cell as NaN)."""
    return isinstance(value, str) and bool(value.strip())


def has_video_id(table: pd.DataFrame) -> pd.Series:
    """Per row: whether it names its recording (rows without one cannot be grouped by recording)."""
    return table.video_id.map(is_video_id).astype(bool)


def conversation_order(table: pd.DataFrame) -> pd.DataFrame:
    """Rows in the order they were spoken, conversation by conversation: by start, end and speaker, then by a hash
    of the row's words and times. Never by `sentence_id` (MM-F2F's encodes the label) nor by file order (MM-F2F
    lists a turn's keep window before its shift row): the order never depends on the answer."""
    return (table.assign(_content=content_hash(table))
            .sort_values(["video_id", "start", "end", "speaker", "_content"], kind="stable")
            .drop(columns="_content").reset_index(drop=True))


def content_hash(table: pd.DataFrame) -> pd.Series:
    """Per row: a 64-bit hash of what was said and when (text, start, end, speaker, as numbers: the same whatever
    the columns' types), never of its label or id."""
    def one(text, start, end, speaker) -> int:
        key = f"{text}\x1f{float(start)!r}\x1f{float(end)!r}\x1f{float(speaker)!r}".encode("utf-8", "surrogatepass")
        return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") >> 1

    return pd.Series([one(*row) for row in zip(table["text"], table["start"], table["end"], table["speaker"],
                                               strict=True)], index=table.index, dtype="int64")


def conflicting_labels(table: pd.DataFrame) -> pd.Series:
    """Per row: whether another row of its conversation is the same window (start, end, speaker: the same audio)
    with another label. MM-F2F has such windows, mostly with the same words too: one input, two answers."""
    labels = table.groupby(CONFLICT_KEY, dropna=False)["label"].transform("nunique")
    return labels.gt(1).reindex(table.index, fill_value=False)


def has_words(text) -> bool:
    """Whether a text cell holds a word: a single word character (`_` alone normalises to nothing)."""
    return isinstance(text, str) and bool(re.search(r"[^\W_]", text))


def corpus_has_words(table: pd.DataFrame) -> bool:
    """Whether any utterance of `table` has words. A corpus without any (recordings without transcripts) trains on
    audio and the speaker turns alone (`processing.ProcessorConfig.words`); one with words skips its rows without."""
    return bool(table["text"].map(has_words).any())


def row_problem(row, needs_words: bool = True) -> str:
    """Why one utterance row cannot be used whatever its recording ("" if it can): an empty video_id, a
    speaker other than 0 / 1, or (`needs_words`: the corpus has words) text without a single word character."""
    if not is_video_id(row.video_id):
        return "empty_video_id"
    if row.speaker not in (0, 1):
        return "bad_speaker"
    if needs_words and not has_words(row.text):
        return "empty_text"
    return ""

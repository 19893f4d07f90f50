"""Timed transcripts and diarization of a recording, read into one table of pieces: (speaker, start, end, text).

Formats read (a recording's `<name>.json`, `<name>.csv` or `<name>.rttm`):
- the JSON that Whisper-family recognisers write: `{"segments": [{"start", "end", "text", "speaker"?, "words"?}]}`
  (openai-whisper, faster-whisper's segments, WhisperX after `assign_word_speakers`: a word or a segment may carry
  its `speaker`). Words with times are the pieces when present (their own pauses split an utterance); otherwise
  the segments are;
- a CSV with columns `speaker`, `start`, `end` and `word` or `text` (one row per word or segment; a `recording`
  column, when present, must name this recording);
- RTTM (NIST's diarization format: `SPEAKER <file> <chan> <onset> <duration> <NA> <NA> <speaker> <NA> <NA>`),
  read as speaker turns without words.

Each speaker is mapped to a channel: `speakers` lists the names of channel 0 and channel 1 (WhisperX and
pyannote say SPEAKER_00, SPEAKER_01); "0" and "1", when they are not such names, are the channels themselves.
Any other speaker is an error that names the file. These formats are small and line-based, so they are read here
rather than through pyannote or whisperx, whose installs bring torch versions of their own.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np
import pandas as pd

from turnfusion.errors import DataError, one_line
from turnfusion.json_files import json_object

PIECE_COLUMNS = ["speaker", "start", "end", "text"]
TRANSCRIPT_SUFFIXES = (".json", ".csv")
DIARIZATION_SUFFIX = ".rttm"
MAX_TRANSCRIPT_BYTES = 64 * 2**20


def read_transcript(path: Path | str, speakers: list[str]) -> pd.DataFrame:
    """The pieces of a transcript (`.json` or `.csv`), sorted by start; DataError naming the file on anything wrong."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        pieces = _whisper_pieces(path)
    elif path.suffix.lower() == ".csv":
        pieces = _csv_pieces(path)
    else:
        raise DataError(f"{path}: a transcript is .json (Whisper-style) or .csv, not {path.suffix or 'no suffix'!r}")
    return _checked(path, pieces, speakers)


def read_rttm(path: Path | str, speakers: list[str]) -> pd.DataFrame:
    """The speaker turns of an RTTM file as pieces without words: its SPEAKER lines whose file id is the file's
    name (an RTTM of many recordings gives each its own; other record types carry no turns)."""
    path = Path(path)
    rows = []
    for number, line in enumerate(_text(path).splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0] != "SPEAKER":
            continue
        if len(fields) < 8:
            raise DataError(f"{path}: line {number}: an RTTM SPEAKER line has 10 fields, got {len(fields)}")
        if fields[1] != path.stem:
            continue
        onset = _number(path, f"line {number}", fields[3], text=True)
        duration = _number(path, f"line {number}", fields[4], text=True)
        if duration < 0 or not math.isfinite(onset + duration):
            raise DataError(f"{path}: line {number}: a turn of {duration} s from {onset} s")
        rows.append((fields[7], onset, onset + duration, ""))
    if not rows:
        raise DataError(f"{path}: no SPEAKER line for recording {path.stem!r} (RTTM: SPEAKER <file> <chan> <onset> "
                        "<duration> <NA> <NA> <speaker> <NA> <NA>)")
    return _checked(path, rows, speakers)
def _text(path: Path) -> str:
    if not path.is_file():
        raise DataError(f"{path}: not found")
    if path.stat().st_size > MAX_TRANSCRIPT_BYTES:
        raise DataError(f"{path}: {path.stat().st_size} bytes; a transcript is read up to {MAX_TRANSCRIPT_BYTES}")
    try:
        return path.read_text(encoding="utf-8-sig")  # a byte-order mark is no part of the first line
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start})") from None


def _number(path: Path, where, value, text: bool = False) -> float:
    """A time in seconds: a JSON number, or (`text`: from a CSV or RTTM) its text; never a bool or a JSON string."""
    try:
        number = float(value) if isinstance(value, str) == text and not isinstance(value, bool) else math.nan
    except (TypeError, ValueError, OverflowError):
        number = math.nan
    if not math.isfinite(number):
        raise DataError(f"{path}: {where}: time {value!r:.40} is not a number of seconds")
    return number


def _whisper_pieces(path: Path) -> list[tuple]:
    document = json_object(path, "a transcript")
    segments = document.get("segments")
    if not isinstance(segments, list):
        raise DataError(f"{path}: no 'segments' list (Whisper-style JSON has {{'segments': [...]}})")
    pieces = []
    for i, segment in enumerate(segments):
        if not isinstance(segment, dict):
            raise DataError(f"{path}: segments[{i}] is not an object")
        words = segment.get("words")
        timed = isinstance(words, list) and words and all(isinstance(w, dict) and "start" in w and "end" in w
                                                          for w in words)
        for j, item in enumerate(words if timed else [segment]):
            where = f"segments[{i}]" + (f".words[{j}]" if timed else "")
            speaker = item.get("speaker") if item.get("speaker") is not None else segment.get("speaker")
            if speaker is None:
                raise DataError(f"{path}: {where} has no speaker; diarize the transcript (WhisperX) or transcribe "
                                "each channel and give each piece its channel's speaker")
            text = item.get("word", "") if timed else item.get("text", "")
            if not isinstance(text, str):
                raise DataError(f"{path}: {where}: text is not a string")
            pieces.append((speaker, _number(path, where, item.get("start")), _number(path, where, item.get("end")),
                           text.strip()))
    return pieces


def _csv_pieces(path: Path) -> list[tuple]:
    try:
        lines = list(csv.reader(io.StringIO(_text(path))))
    except csv.Error as exc:
        raise DataError(f"{path}: not a readable CSV ({one_line(exc, 120)})") from None
    if not lines:
        raise DataError(f"{path}: empty; a transcript CSV has a header (speaker, start, end, word or text)")
    header = lines[0]
    numbered = [(number, row) for number, row in enumerate(lines[1:], start=2) if row]  # blank lines: none
    for number, row in numbered:
        if len(row) != len(header):
            raise DataError(f"{path}: row {number} has {len(row)} fields, the header {len(header)}")
    numbers = [number for number, _ in numbered]  # each row's own number in the file, blank lines counted
    table = pd.DataFrame([row for _, row in numbered], columns=header, dtype=str)
    if "word" in table.columns and "text" in table.columns:
        raise DataError(f"{path}: both a word and a text column; a transcript CSV has one of them")
    words = "word" if "word" in table.columns else "text"
    missing = [c for c in ("speaker", "start", "end", words) if c not in table.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; a transcript CSV has speaker, start, end and word "
                        "or text")
    if "recording" in table.columns:
        other = np.flatnonzero(table.recording.to_numpy() != path.stem)
        if len(other):
            raise DataError(f"{path}: row {numbers[other[0]]} names recording {table.recording.iat[other[0]]!r:.60}, "
                            f"not {path.stem!r}")
    return [(speaker, _number(path, f"row {n}", start, text=True), _number(path, f"row {n}", end, text=True),
             said.strip())
            for n, speaker, start, end, said in zip(numbers, table.speaker, table.start, table.end, table[words],
                                                    strict=True)]


def _checked(path: Path, pieces: list[tuple], speakers: list[str]) -> pd.DataFrame:
    rows = []
    for i, (speaker, start, end, text) in enumerate(pieces):
        if start < 0 or end < start:
            raise DataError(f"{path}: piece {i + 1} ({text!r:.40}) has start {start} and end {end}; times are "
                            "seconds from the recording's start, with start <= end")
        rows.append((channel_of(path, speaker, speakers), start, end, text))
    table = pd.DataFrame(rows, columns=PIECE_COLUMNS)
    return table.sort_values(["start", "speaker"], kind="stable").reset_index(drop=True)


def channel_of(path: Path, speaker, speakers: list[str]) -> int:
    """The channel (0 or 1) of a speaker named in `path`: its place in `speakers` (names first), else the channel
    it names ("0" or "1")."""
    name = str(speaker).strip()
    if name in speakers:
        return speakers.index(name)
    if name in ("0", "1"):
        return int(name)
    raise DataError(f"{path}: speaker {name!r:.40} is neither of the channels' speakers {speakers} nor 0 / 1 "
                    "(set calls.speakers)")


def transcript_table(files: dict[str, Path], speakers: list[str], reader=None) -> pd.DataFrame:
    """The pieces of many recordings' transcripts (or, with `reader=read_rttm`, diarizations) as one table with a
    `video_id` column, in the order of `files` ({video_id: path})."""
    reader = reader or read_transcript
    tables = [reader(path, speakers).assign(video_id=video_id) for video_id, path in files.items()]
    columns = ["video_id", *PIECE_COLUMNS]
    return pd.concat(tables, ignore_index=True)[columns] if tables else pd.DataFrame(columns=columns)

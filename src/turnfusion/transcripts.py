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
pyannote say SPEAKER_00, SPEAKER_01); "0" and "1" always mean those channels. Any other speaker is an error that
names the file. These formats are small and line-based, so they are read here rather than through pyannote or
whisperx, whose installs bring torch versions of their own.
"""

from __future__ import annotations

import math
from pathlib import Path

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
    if path.suffix == ".json":
        pieces = _whisper_pieces(path)
    elif path.suffix == ".csv":
        pieces = _csv_pieces(path)
    else:
        raise DataError(f"{path}: a transcript is .json (Whisper-style) or .csv, not {path.suffix or 'no suffix'!r}")
    return _checked(path, pieces, speakers)


def read_rttm(path: Path | str, speakers: list[str]) -> pd.DataFrame:
    """The speaker turns of an RTTM file as pieces without words."""
    path = Path(path)
    rows = []
    for number, line in enumerate(_text(path).splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith(("#", ";")):
            continue
        if fields[0] != "SPEAKER":
            continue  # other RTTM record types (SPKR-INFO, LEXEME, ...) carry no turns
        if len(fields) < 8:
            raise DataError(f"{path}: line {number}: an RTTM SPEAKER line has 10 fields, got {len(fields)}")
        onset, duration = _number(path, number, fields[3]), _number(path, number, fields[4])
        rows.append((fields[7], onset, onset + duration, ""))
    return _checked(path, rows, speakers)


def _text(path: Path) -> str:
    if not path.is_file():
        raise DataError(f"{path}: not found")
    if path.stat().st_size > MAX_TRANSCRIPT_BYTES:
        raise DataError(f"{path}: {path.stat().st_size} bytes; a transcript is read up to {MAX_TRANSCRIPT_BYTES}")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start})") from None


def _number(path: Path, where, value) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
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
            speaker = item.get("speaker", segment.get("speaker"))
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
    _text(path)  # size and encoding, with the file named
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"{path}: not a readable CSV ({one_line(exc, 120)})") from None
    words = "word" if "word" in table.columns else "text"
    missing = [c for c in ("speaker", "start", "end", words) if c not in table.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; a transcript CSV has speaker, start, end and word "
                        "or text")
    if "recording" in table.columns:
        other = table.loc[table.recording != path.stem, "recording"]
        if len(other):
            raise DataError(f"{path}: row {other.index[0] + 2} names recording {other.iat[0]!r:.60}, not "
                            f"{path.stem!r}")
    return [(row.speaker, _number(path, f"row {i + 2}", row.start), _number(path, f"row {i + 2}", row.end),
             row[words].strip()) for i, row in table.iterrows()]


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
    """The channel (0 or 1) of a speaker named in `path`: its place in `speakers`, or the channel it names."""
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

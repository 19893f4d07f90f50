"""Cut utterances out of recordings into one packed store: `audio.npy` (int16 PCM) + `segments.parquet`.

The index keeps conversation order (`position` within each video), so every utterance can find its
predecessors, and `offset`/`n_samples` into the one array file.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from turnfusion.audio import read_audio, resample, select_channel
from turnfusion.schema import DataError

log = logging.getLogger(__name__)
AUDIO_FILE, INDEX_FILE = "audio.npy", "segments.parquet"
TIME_TOLERANCE_S = 0.05  # annotations may end a few ms past the last sample


@dataclass
class SegmentStore:
    audio: np.ndarray  # int16, all segments back to back (memory-mapped)
    index: pd.DataFrame
    sample_rate: int

    @classmethod
    def open(cls, directory: Path | str) -> "SegmentStore":
        directory = Path(directory)
        for name in (AUDIO_FILE, INDEX_FILE):
            if not (directory / name).exists():
                raise DataError(f"{directory / name}: segment store file missing (run the segment stage)")
        index = pd.read_parquet(directory / INDEX_FILE)
        return cls(np.load(directory / AUDIO_FILE, mmap_mode="r"), index, int(index["sample_rate"].iat[0]))

    def waveform(self, row: int) -> np.ndarray:
        """Float32 waveform of the segment at index position `row`."""
        offset, n = int(self.index["offset"].iat[row]), int(self.index["n_samples"].iat[row])
        return np.asarray(self.audio[offset: offset + n], dtype=np.float32) / 32768.0


def timestamp_problem(start: float, end: float, duration: float) -> str | None:
    """Why a row's [start, end] cannot be cut from a recording of `duration` seconds, or None."""
    if start is None or end is None or math.isnan(start) or math.isnan(end):
        return "nan_timestamp"
    if start < 0:
        return "negative_start"
    if start >= end:
        return "start_not_before_end"
    if start >= duration or end > duration + TIME_TOLERANCE_S:
        return "beyond_recording"
    return None


def keep_end(samples: np.ndarray, max_samples: int) -> np.ndarray:
    """Length policy: keep the last `max_samples` (the end of an utterance carries the turn cues)."""
    return samples[-max_samples:] if len(samples) > max_samples else samples


def build_store(table: pd.DataFrame, audio_dir: Path, out_dir: Path, sample_rate: int, max_seconds: float,
                channels: str = "mix", progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Cut every row of `table` from `audio_dir/<video_id>.wav` into a packed store in `out_dir`.

    `channels`: "mix" averages all channels; "speaker" takes the channel named by the `speaker` column
    (0 = left, 1 = right) from stereo recordings. Returns (index, skipped) where `skipped` has one row
    per dropped utterance with its reason.
    """
    from tqdm import tqdm

    if channels not in ("mix", "speaker"):
        raise ValueError(f"channels must be 'mix' or 'speaker', got {channels!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    max_samples = int(max_seconds * sample_rate)
    table = table.sort_values(["video_id", "start", "sentence_id"], kind="stable").reset_index(drop=True)
    pieces, rows, skipped = [], [], []
    offset = 0
    for video_id, conv in tqdm(table.groupby("video_id", sort=True), desc="segment", disable=not progress):
        try:
            samples, rate = read_audio(Path(audio_dir) / f"{video_id}.wav")
        except DataError as exc:
            skipped += [{"sentence_id": s, "video_id": video_id, "reason": "unreadable_recording", "detail": str(exc)}
                        for s in conv["sentence_id"]]
            continue
        samples = resample(samples, rate, sample_rate)
        duration = len(samples) / sample_rate
        position = 0
        for row in conv.itertuples(index=False):
            problem = timestamp_problem(row.start, row.end, duration)
            if problem is None and (not isinstance(row.text, str) or not row.text.strip()):
                problem = "empty_text"
            if problem:
                skipped.append({"sentence_id": row.sentence_id, "video_id": video_id, "reason": problem,
                                "detail": f"start={row.start} end={row.end} recording={duration:.2f}s"})
                continue
            channel = int(row.speaker) if channels == "speaker" else None
            cut = samples[int(round(row.start * sample_rate)): int(round(row.end * sample_rate))]
            cut = keep_end(select_channel(cut, channel), max_samples)
            pcm = np.clip(np.round(cut * 32767), -32768, 32767).astype(np.int16)
            pieces.append(pcm)
            rows.append({**row._asdict(), "position": position, "offset": offset, "n_samples": len(pcm),
                         "sample_rate": sample_rate})
            offset += len(pcm)
            position += 1
    if not rows:
        raise DataError("no utterance could be cut: every row was skipped (see the segment report)")
    index = pd.DataFrame(rows)
    np.save(out_dir / AUDIO_FILE, np.concatenate(pieces))
    index.to_parquet(out_dir / INDEX_FILE, index=False)
    return index, pd.DataFrame(skipped, columns=["sentence_id", "video_id", "reason", "detail"])

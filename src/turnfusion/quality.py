"""The drop_silent filter: which recordings are usable, and why the others are not."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from turnfusion.audio import active_fraction, read_audio
from turnfusion.schema import DataError


@dataclass
class RecordingCheck:
    video_id: str
    keep: bool
    reason: str  # "ok", "missing", "empty", "unreadable", "too_short", "silent"
    detail: str = ""
    seconds: float = 0.0


def check_recording(video_id: str, path: Path, min_seconds: float, vad_threshold_db: float,
                    min_active_fraction: float) -> RecordingCheck:
    path = Path(path)
    if not path.exists():
        return RecordingCheck(video_id, False, "missing", f"{path} not found (download failed?)")
    if path.stat().st_size == 0:
        return RecordingCheck(video_id, False, "empty", f"{path} is a zero-length file")
    try:
        samples, rate = read_audio(path)
    except DataError as exc:
        return RecordingCheck(video_id, False, "unreadable", str(exc))
    seconds = len(samples) / rate
    if seconds < min_seconds:
        return RecordingCheck(video_id, False, "too_short", f"{seconds:.2f} s < {min_seconds} s", seconds)
    active = active_fraction(samples, rate, vad_threshold_db)
    if active < min_active_fraction:
        return RecordingCheck(video_id, False, "silent",
                              f"{active:.1%} of frames above {vad_threshold_db} dBFS (< {min_active_fraction:.0%})",
                              seconds)
    return RecordingCheck(video_id, True, "ok", f"{active:.1%} active", seconds)


def check_recordings(video_ids: list[str], audio_dir: Path, min_seconds: float, vad_threshold_db: float,
                     min_active_fraction: float) -> pd.DataFrame:
    checks = [check_recording(v, Path(audio_dir) / f"{v}.wav", min_seconds, vad_threshold_db, min_active_fraction)
              for v in video_ids]
    return pd.DataFrame([c.__dict__ for c in checks], columns=["video_id", "keep", "reason", "detail", "seconds"])

"""Stage `drop_silent`: which recordings are usable, and why the others are not.

A recording is kept when it holds enough speech by Silero VAD (`vad.py`); loud recordings without speech
(music, noise) are dropped as `no_speech`. An energy check runs first, as a cheap pass that drops
silent recordings without running the VAD.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from turnfusion.audio import read_audio, recording_path
from turnfusion.errors import DataError
from turnfusion.schema import has_video_id
from turnfusion.vad import speech_seconds

if TYPE_CHECKING:
    from turnfusion.config import DropSilentConfig


def active_fraction(samples: np.ndarray, sample_rate: int, threshold_db: float, frame_s: float = 0.03) -> float:
    """Fraction of frames whose RMS level is above `threshold_db` (a simple energy VAD)."""
    mono = samples.mean(axis=1) if samples.ndim == 2 else samples
    frame = max(1, int(frame_s * sample_rate))
    n = len(mono) // frame
    if n == 0:
        return 0.0
    frames = mono[: n * frame].reshape(n, frame).astype(np.float64)
    level = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-20)
    return float(np.mean(level > threshold_db))


@dataclass
class RecordingCheck:
    video_id: str
    keep: bool
    reason: str  # "ok", "missing", "empty", "unreadable", "too_short", "silent", "no_speech"
    detail: str = ""
    seconds: float = 0.0
    speech_seconds: float = 0.0  # by the VAD (0 where it did not run)


def check_recording(video_id: str, path: Path, cfg: DropSilentConfig) -> RecordingCheck:
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
    if seconds < cfg.min_seconds:
        return RecordingCheck(video_id, False, "too_short", f"{seconds:.2f} s < {cfg.min_seconds} s", seconds)
    active = active_fraction(samples, rate, cfg.energy_threshold_db)
    if active < cfg.min_active_fraction:
        return RecordingCheck(video_id, False, "silent", f"{active:.1%} of frames above {cfg.energy_threshold_db} "
                              f"dBFS (< {cfg.min_active_fraction:.0%})", seconds)
    speech = speech_seconds(samples.mean(axis=1), rate, cfg.vad_threshold)
    detail = f"{speech:.1f} s speech ({speech / seconds:.0%}), {active:.0%} of frames above the energy threshold"
    if speech < cfg.min_speech_seconds or speech / seconds < cfg.min_speech_fraction:
        return RecordingCheck(video_id, False, "no_speech", detail, seconds, speech)
    return RecordingCheck(video_id, True, "ok", detail, seconds, speech)


def check_recordings(video_ids: list[str], audio_dir: Path, cfg: DropSilentConfig, workers: int = 1) -> pd.DataFrame:
    """One row per recording: video_id, keep, reason, detail, seconds, speech_seconds; `workers` processes."""
    jobs = [(v, recording_path(audio_dir, v), cfg) for v in video_ids]
    if workers > 1 and len(jobs) > 1:
        from turnfusion.training.forked import fork_pool

        with fork_pool(min(workers, len(jobs))) as pool:
            checks = pool.starmap(check_recording, jobs, chunksize=1)
    else:
        checks = [check_recording(*job) for job in jobs]
    return pd.DataFrame([c.__dict__ for c in checks],
                        columns=["video_id", "keep", "reason", "detail", "seconds", "speech_seconds"])


def drop_silent(table: pd.DataFrame, audio_dir: Path, cfg: DropSilentConfig,
                workers: int = 1) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """(the rows of usable recordings, one check per recording, a report of counts).

    Rows without a video_id have no recording: they are dropped and counted (`utterances_without_video_id`).
    """
    named = has_video_id(table)
    checks = check_recordings(sorted(table.video_id[named].unique()), audio_dir, cfg, workers)
    kept_ids = set(checks.video_id[checks.keep])
    kept = table[table.video_id.isin(kept_ids)]
    reasons = {r: int(n) for r, n in checks.reason.value_counts().items()}
    report = {"recordings": len(checks), "kept": len(kept_ids),
              **{f"dropped_{r}": n for r, n in reasons.items() if r != "ok"},
              "utterances_in": len(table), "utterances_kept": len(kept),
              **({"utterances_without_video_id": int((~named).sum())} if (~named).any() else {}),
              "seconds_kept": round(float(checks.seconds[checks.keep].sum()), 1),
              "speech_seconds_kept": round(float(checks.speech_seconds[checks.keep].sum()), 1)}
    return kept, checks, report

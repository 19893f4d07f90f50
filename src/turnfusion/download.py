"""Fetch recordings with yt-dlp and extract their audio to wav (ffmpeg from imageio-ffmpeg)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

log = logging.getLogger(__name__)


def youtube_url(video_id: str) -> str:
    return f"https://www.youtube.com/watch?v={video_id}"


def resolve_url(url: str) -> str:
    """A URL as yt-dlp takes it: a bare local path becomes an absolute file:// URL."""
    if "://" in url:
        return url
    return Path(url).resolve().as_uri()


def source_stamp(url: str) -> str:
    """What identifies the fetched content: the URL, or for a local file its path (relative to the project when
    inside it, so a moved project fetches nothing again) with its size and mtime (it may be regenerated)."""
    if "://" not in url and Path(url).exists():
        path, stat = Path(url).absolute(), Path(url).stat()
        shown = path.relative_to(Path.cwd()).as_posix() if path.is_relative_to(Path.cwd()) else path.as_posix()
        return f"{shown} {stat.st_size}:{stat.st_mtime_ns}"
    return url


class _ErrorCollector:
    """yt-dlp logger that keeps the last error line instead of printing it."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def debug(self, msg: str) -> None:
        pass

    def info(self, msg: str) -> None:
        pass

    def warning(self, msg: str) -> None:
        log.debug("yt-dlp: %s", msg)

    def error(self, msg: str) -> None:
        self.errors.append(msg)


@dataclass
class DownloadResult:
    video_id: str
    status: str  # "downloaded", "present" or "failed"
    error: str = ""


def download_audio(video_id: str, url: str, out_dir: Path, retries: int = 2, timeout_s: float = 30.0,
                   ffmpeg: str | None = None) -> DownloadResult:
    """Download one recording to `out_dir/<video_id>.wav`; never raises for a failed download."""
    import imageio_ffmpeg
    import yt_dlp

    out_dir = Path(out_dir)
    target, stamp_file = out_dir / f"{video_id}.wav", out_dir / f"{video_id}.source"
    stamp = source_stamp(url)
    if target.exists() and stamp_file.exists() and stamp_file.read_text() == stamp:
        return DownloadResult(video_id, "present")
    _remove_partial(out_dir, video_id)
    collector = _ErrorCollector()
    options = {
        "outtmpl": str(out_dir / f"{video_id}.%(ext)s"),
        "format": "bestaudio/best",
        "postprocessors": [{"key": "FFmpegExtractAudio", "preferredcodec": "wav"}],
        "ffmpeg_location": ffmpeg or imageio_ffmpeg.get_ffmpeg_exe(),
        "enable_file_urls": True,
        "retries": retries,
        "extractor_retries": retries,
        "socket_timeout": timeout_s,
        "logger": collector,
        "noprogress": True,
        "quiet": True,
    }
    try:
        with yt_dlp.YoutubeDL(options) as ydl:
            ydl.download([resolve_url(url)])
    except Exception as exc:  # yt-dlp raises DownloadError and others; each is a recorded failure
        message = collector.errors[-1] if collector.errors else f"{type(exc).__name__}: {exc}"
        _remove_partial(out_dir, video_id)
        return DownloadResult(video_id, "failed", message.replace("ERROR: ", "").strip())
    if not target.exists():
        _remove_partial(out_dir, video_id)
        return DownloadResult(video_id, "failed", "yt-dlp finished but produced no wav file")
    stamp_file.write_text(stamp)
    return DownloadResult(video_id, "downloaded")


def _remove_partial(out_dir: Path, video_id: str) -> None:
    for leftover in out_dir.glob(f"{video_id}.*"):
        leftover.unlink()  # partial downloads, a stale wav and its stamp


def download_all(manifest: pd.DataFrame, out_dir: Path, retries: int = 2, timeout_s: float = 30.0,
                 progress: bool = True) -> pd.DataFrame:
    """Download every recording of `manifest` (columns video_id, url). Returns one row per recording."""
    from tqdm import tqdm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for row in tqdm(manifest.itertuples(index=False), total=len(manifest), desc="download", disable=not progress):
        result = download_audio(row.video_id, row.url, out_dir, retries, timeout_s)
        if result.status == "failed":
            log.warning("download of %s failed: %s", row.video_id, result.error)
        results.append(result.__dict__)
    return pd.DataFrame(results, columns=["video_id", "status", "error"])


def failure_summary(results: pd.DataFrame) -> str:
    """One line: how many recordings are available, how many failed, and the most common errors."""
    failed = results[results.status == "failed"]
    message = f"{len(results) - len(failed)} of {len(results)} recordings available, {len(failed)} failed"
    if len(failed):
        # group by the error itself, without yt-dlp's "[extractor] <id>: " prefix
        reasons = failed.error.str.replace(r"^\[\w+\] [^:]+: ", "", regex=True).str.slice(0, 120).value_counts()
        message += "; most common errors: " + "; ".join(f"{n}x {r}" for r, n in reasons.head(3).items())
    return message

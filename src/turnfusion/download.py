"""Fetch recordings with yt-dlp and extract their audio to 16 kHz FLAC (ffmpeg from imageio-ffmpeg)."""

from __future__ import annotations

import glob
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
                   sample_rate: int = 16000, mono: bool = False, ffmpeg: str | None = None) -> DownloadResult:
    """Fetch one recording with yt-dlp and extract its first audio stream with ffmpeg to
    `out_dir/<video_id>.flac` at `sample_rate` (channels kept unless `mono`: a stereo recording may hold one
    speaker per channel). Never raises for a failed download.

    FLAC at 16 kHz is what the later stages read: 210 h of stereo is ~25 GB, against ~130 GB as 44.1 kHz wav.
    """
    import imageio_ffmpeg

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target, stamp_file = out_dir / f"{video_id}.flac", out_dir / f"{video_id}.source"
    stamp = f"{source_stamp(url)} -> flac {sample_rate} Hz {'mono' if mono else 'channels kept'}"
    if target.exists() and stamp_file.exists() and stamp_file.read_text() == stamp:
        return DownloadResult(video_id, "present")
    _remove_partial(out_dir, video_id)
    if "://" not in url and not Path(url).exists():
        return DownloadResult(video_id, "failed", f"recording file not found: {url}")
    fetched, error = _fetch(video_id, url, out_dir, retries, timeout_s)
    if error:
        _remove_partial(out_dir, video_id)
        return DownloadResult(video_id, "failed", error)
    error = _extract_flac(ffmpeg or imageio_ffmpeg.get_ffmpeg_exe(), fetched, target, sample_rate, mono)
    fetched.unlink(missing_ok=True)
    if error:
        _remove_partial(out_dir, video_id)
        return DownloadResult(video_id, "failed", error)
    stamp_file.write_text(stamp)
    return DownloadResult(video_id, "downloaded")


def _fetch(video_id: str, url: str, out_dir: Path, retries: int, timeout_s: float) -> tuple[Path | None, str]:
    """(the fetched file, "") or (None, yt-dlp's error)."""
    import yt_dlp

    collector = _ErrorCollector()
    options = {
        "outtmpl": str(out_dir / f"{video_id}.fetched.%(ext)s"),
        "format": "bestaudio/best",
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
        return None, message.replace("ERROR: ", "").strip()
    fetched = [p for p in out_dir.glob(f"{glob.escape(video_id)}.fetched.*") if not p.name.endswith(".part")]
    if not fetched:
        return None, "yt-dlp finished but wrote no file"
    return fetched[0], ""


def _extract_flac(ffmpeg: str, source: Path, target: Path, sample_rate: int, mono: bool) -> str:
    """Extract the first audio stream of `source` to `target` (FLAC); returns ffmpeg's error, or ""."""
    import subprocess

    partial = target.with_name(f".{target.name}.partial")
    command = [ffmpeg, "-nostdin", "-v", "error", "-y", "-i", str(source), "-map", "0:a:0", "-vn",
               "-ar", str(sample_rate), *(["-ac", "1"] if mono else []), "-c:a", "flac", "-sample_fmt", "s16",
               "-f", "flac", str(partial)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        partial.unlink(missing_ok=True)
        lines = done.stderr.strip().splitlines()
        return f"ffmpeg could not extract audio: {lines[-1] if lines else f'exit code {done.returncode}'}"
    partial.replace(target)
    return ""


def _remove_partial(out_dir: Path, video_id: str) -> None:
    name = glob.escape(video_id)
    for leftover in [*out_dir.glob(f"{name}.*"), *out_dir.glob(f".{name}.*")]:
        leftover.unlink()  # partial downloads, a stale recording and its stamp


def download_all(manifest: pd.DataFrame, out_dir: Path, retries: int = 2, timeout_s: float = 30.0,
                 sample_rate: int = 16000, mono: bool = False, progress: bool = True) -> pd.DataFrame:
    """Download every recording of `manifest` (columns video_id, url). Returns one row per recording."""
    from tqdm import tqdm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for row in tqdm(manifest.itertuples(index=False), total=len(manifest), desc="download", disable=not progress):
        result = download_audio(row.video_id, row.url, out_dir, retries, timeout_s, sample_rate, mono)
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

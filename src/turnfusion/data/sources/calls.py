"""Data source `calls`: your own recordings, without labels (the label stage derives them from who speaks when).

A folder of `<name>.<audio>` recordings, stereo with one speaker per channel (as telephony and WebRTC stacks record
calls) or mono with `<name>.rttm` (a diarization), each optionally with a timed transcript `<name>.json`
(Whisper-style) or `<name>.csv` (`transcripts` reads both). Writes `manifest.csv` (video_id, url: the recording, for
the download stage), and `transcripts.csv` / `diarization.csv` (every recording's pieces, one table each) when there
are any. A file's name is the recording's id, so it must be a name (`names.NAME_RULE`); recordings never leave the
machine.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from turnfusion.data.transcripts import DIARIZATION_SUFFIX, TRANSCRIPT_SUFFIXES, read_rttm, transcript_table
from turnfusion.errors import DataError
from turnfusion.names import NAME_RULE, is_name

if TYPE_CHECKING:
    from turnfusion.config import CallsConfig

log = logging.getLogger(__name__)
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a")


def find_calls(folder: Path) -> tuple[dict[str, Path], dict[str, Path], dict[str, Path]]:
    """({id: recording}, {id: transcript}, {id: rttm}) of a calls folder (not its sub-folders); DataError naming the
    file for a name that is not a name, two recordings or transcripts of one id, or a transcript or RTTM whose
    recording is missing."""
    if not folder.is_dir():
        raise DataError(f"{folder}: calls folder not found (calls.folder)")
    found: dict[str, dict[str, Path]] = {"recording": {}, "transcript": {}, "diarization": {}}
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):  # hidden: macOS's ._<name> companions, editors' swap files
            log.info("%s: hidden file, not read", path)
            continue
        if path.is_symlink() and not path.exists():
            log.warning("%s: a link to nothing, not read", path)
            continue
        suffix = path.suffix.lower()
        kind = ("recording" if suffix in AUDIO_SUFFIXES else "transcript" if suffix in TRANSCRIPT_SUFFIXES
                else "diarization" if suffix == DIARIZATION_SUFFIX else None)
        if kind is None or not path.is_file():
            continue
        if not is_name(path.stem):
            raise DataError(f"{path}: the file's name {path.stem!r:.60} is a recording's id, so it must be {NAME_RULE}")
        if path.stem in found[kind]:
            raise DataError(f"{path}: a second {kind} for {path.stem!r} (also {found[kind][path.stem].name})")
        found[kind][path.stem] = path
    recordings = found["recording"]
    if not recordings:
        raise DataError(f"{folder}: no recording ({', '.join(AUDIO_SUFFIXES)})")
    for kind in ("transcript", "diarization"):
        orphans = sorted(set(found[kind]) - set(recordings))
        if orphans:
            raise DataError(f"{found[kind][orphans[0]]}: {kind} without a recording {orphans[0]}.*")
    return recordings, found["transcript"], found["diarization"]


def write_calls(cfg: CallsConfig, out_dir: Path) -> pd.DataFrame:
    """Write the calls source under `out_dir`; returns the manifest."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    recordings, transcripts, diarizations = find_calls(Path(cfg.folder))
    speakers = [str(s) for s in cfg.speakers]
    manifest = pd.DataFrame({"video_id": list(recordings), "url": [p.absolute().as_posix()
                                                                  for p in recordings.values()]})
    for name, files, reader in (("transcripts.csv", transcripts, None), ("diarization.csv", diarizations, read_rttm)):
        (out_dir / name).unlink(missing_ok=True)
        if files:
            transcript_table(files, speakers, reader).to_csv(out_dir / name, index=False)
    (out_dir / "utterances.csv").unlink(missing_ok=True)  # no labels of its own: the label stage derives them
    manifest.to_csv(out_dir / "manifest.csv", index=False)
    return manifest

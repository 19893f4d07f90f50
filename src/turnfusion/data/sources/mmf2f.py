"""Data source `mmf2f`: MM-F2F annotation CSVs (or your own corpus in the same schema), with each video's
recording fetched by the download stage from where `mmf2f.recordings` says (see `recording_urls`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from turnfusion.data.download import youtube_url
from turnfusion.errors import DataError
from turnfusion.schema import UTTERANCE_COLUMNS, conversation_order, has_video_id, read_utterances

if TYPE_CHECKING:
    from turnfusion.config import Mmf2fConfig


def read_annotations(annotation_files: dict[str, str]) -> pd.DataFrame:
    """The annotation files, given as {train / val / test / pool: path}, as one table with a `split` column."""
    tables = []
    for split, path in annotation_files.items():
        table = read_utterances(path)
        tables.append(table[UTTERANCE_COLUMNS].assign(split=split, file=str(path)))
    table = pd.concat(tables, ignore_index=True)
    dup = table.sentence_id.duplicated(keep=False)
    if dup.any():
        first = table[dup].iloc[0]
        files = sorted(set(table.loc[table.sentence_id == first.sentence_id, "file"]))
        raise DataError(f"sentence_id {first.sentence_id!r} appears in more than one annotation file: {files}")
    return table.drop(columns="file")


def recording_urls(video_ids: list[str], recordings: str) -> list[str]:
    """Where each video's recording is, as the download stage fetches it (yt-dlp + ffmpeg): `youtube`; a template
    with {video_id} (a URL or a path); or a directory, where `<video_id>.*` is looked up (a video without a
    file gets the pattern, which the download stage records as not found)."""
    if recordings == "youtube":
        return [youtube_url(v) for v in video_ids]
    if "{video_id}" in recordings:
        return [recordings.replace("{video_id}", v) for v in video_ids]
    directory = Path(recordings)
    if not directory.is_dir():
        raise DataError(f"params.yaml: mmf2f.recordings: {recordings!r} is neither youtube, rehearsal, a template "
                        "with {video_id} nor an existing directory")
    urls = []
    for video_id in video_ids:
        found = sorted(p for p in directory.iterdir() if p.stem == video_id and not p.name.startswith("."))
        urls.append(str(found[0]) if found else str(directory / f"{video_id}.*"))
    return urls


def import_mmf2f(cfg: Mmf2fConfig, out_dir: Path, seed: int) -> pd.DataFrame:
    """Write `utterances.csv` (the annotation rows with their split; `pool` rows are split later, by video) and
    `manifest.csv` (video_id, url); with `recordings: rehearsal` also the spoken recordings under `remote/`,
    `rehearsal.json`, and each row's `audio_start` / `audio_end` in the table. Returns the utterance table."""
    table = read_annotations(cfg.annotations)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    videos = sorted(table.loc[has_video_id(table), "video_id"].unique())
    if cfg.recordings == "rehearsal":
        from turnfusion.data.sources.rehearsal import render_rehearsal

        named = table[has_video_id(table)]
        rendered, spans = render_rehearsal(conversation_order(named), out_dir, seed)
        table = table.merge(spans, on="sentence_id", how="left")  # where each row's own clip lies
        manifest = rendered[["video_id", "url"]]
        totals = rendered.drop(columns=["video_id", "url"]).sum()
        (out_dir / "rehearsal.json").write_text(json.dumps(
            {"videos": len(rendered), "hours": round(float(totals.pop("seconds")) / 3600, 2),
             **{k: int(v) for k, v in totals.items()},
             "note": "eSpeak NG speech of the annotation table, each row in a clip of its own: no real "
                     "turn-taking cue in the audio"}, indent=2))
    else:
        manifest = pd.DataFrame({"video_id": videos, "url": recording_urls(videos, cfg.recordings)})
    table.to_csv(out_dir / "utterances.csv", index=False)
    manifest.to_csv(out_dir / "manifest.csv", index=False)
    return table

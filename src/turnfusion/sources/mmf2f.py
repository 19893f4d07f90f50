"""Data source `mmf2f`: MM-F2F annotation CSVs, with recordings fetched from YouTube."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from turnfusion.download import youtube_url
from turnfusion.schema import UTTERANCE_COLUMNS, DataError, read_utterances
from turnfusion.splits import SPLITS


def import_mmf2f(annotation_files: dict[str, str], out_dir: Path) -> pd.DataFrame:
    """Import MM-F2F annotation CSVs, given as {split name: path}; each file's rows keep its split."""
    if not annotation_files:
        raise DataError("mmf2f source: no annotation files given (params: mmf2f.annotations)")
    tables = []
    for split, path in annotation_files.items():
        if split not in SPLITS:
            raise DataError(f"mmf2f source: unknown split {split!r} for {path}; expected one of {SPLITS}")
        table = read_utterances(path)
        table["split"] = split
        tables.append(table[UTTERANCE_COLUMNS + ["split"]])
    table = pd.concat(tables, ignore_index=True)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table.to_csv(out_dir / "utterances.csv", index=False)
    videos = sorted(table["video_id"].unique())
    pd.DataFrame({"video_id": videos, "url": [youtube_url(v) for v in videos]}).to_csv(out_dir / "manifest.csv",
                                                                                      index=False)
    return table

"""Stage `source`: the data sources. Each writes `utterances.csv` (MM-F2F schema) and `manifest.csv`
(video_id, url) for the download stage: `demo` (the embedded eSpeak NG corpus, offline), `mmf2f`, or `calls` (your
recordings: no labels, so no `utterances.csv`; the label stage derives them)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from turnfusion.config import CallsConfig, DataConfig, DemoConfig, Mmf2fConfig


def write_source(out_dir: Path, data: DataConfig, demo: DemoConfig, mmf2f: Mmf2fConfig, calls: CallsConfig) -> None:
    """Write the source chosen by `data.source` under `out_dir`."""
    if data.source == "calls":
        from turnfusion.data.sources.calls import write_calls

        write_calls(calls, out_dir)
    elif data.source == "demo":
        from turnfusion.data.sources.demo import write_demo_corpus

        write_demo_corpus(out_dir, demo, data.seed)
    else:
        from turnfusion.data.sources.mmf2f import import_mmf2f

        import_mmf2f(mmf2f, out_dir, data.seed)

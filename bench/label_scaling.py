"""What the label stage costs as the calls grow (figures only, no pass/fail): demo calls rendered stereo, labelled from
their channels alone (Silero VAD on each), in a fresh process per size whose peak RSS (ru_maxrss) and wall time are
printed with seconds per hour of audio.

    python bench/label_scaling.py [--work /tmp/label_scaling]

Sizes: 1x (8 calls of 36 utterances), 4x by number (32 calls of 36) and 4x by length (8 calls of 144). Memory should
stay flat in both: the stage holds one recording at a time.
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

from child_process import run

SIZES = {"1x": (8, 36), "4x calls": (32, 36), "4x length": (8, 144)}


def generate(folder: Path, n_calls: int, n_utterances: int) -> None:
    from turnfusion.config import DemoConfig
    from turnfusion.data.sources.demo import write_demo_corpus

    cfg = DemoConfig(n_conversations=n_calls, utterances_per_conversation=n_utterances, sample_rate=16000,
                     stereo_fraction=1.0, snr_db=20, n_silent=0, n_corrupt=0, n_empty=0, language="en",
                     transcripts="none", turn_openers=0.0)
    write_demo_corpus(folder, cfg, seed=0)


def label(folder: Path) -> None:
    """In the child: the label stage's work on `folder`'s recordings; prints hours of audio and counts as JSON."""
    import soundfile as sf
    import yaml

    from turnfusion.config import LabelConfig, from_params
    from turnfusion.data.label import derive_labels

    cfg = from_params(LabelConfig, yaml.safe_load(Path("params.yaml").read_text()))
    ids = sorted(p.stem for p in (folder / "remote").glob("*.flac"))
    hours = sum(sf.info(folder / "remote" / f"{i}.flac").duration for i in ids) / 3600
    table, overlaps, _ = derive_labels(ids, folder / "remote", None, None, cfg, progress=False)
    print(json.dumps({"hours": hours, "utterances": len(table), "overlaps": len(overlaps)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "label_scaling"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        label(Path(args.child))
        return
    print(f"{'size':<10} {'calls':>5} {'hours':>6} {'utterances':>10} {'seconds':>8} {'s / hour':>8} {'peak MB':>8}")
    for name, (n_calls, n_utterances) in SIZES.items():
        folder = Path(args.work) / name.replace(" ", "_")
        if not (folder / "manifest.csv").exists():
            generate(folder, n_calls, n_utterances)
        seconds, peak_mb, last = run([sys.executable, __file__, "--child", str(folder)])
        try:
            done = json.loads(last)
        except json.JSONDecodeError:
            print(f"{name:<10} failed: {last}")
            continue
        print(f"{name:<10} {n_calls:>5} {done['hours']:>6.2f} {done['utterances']:>10} {seconds:>8.1f} "
              f"{seconds / done['hours']:>8.1f} {peak_mb:>8.0f}")


if __name__ == "__main__":
    main()

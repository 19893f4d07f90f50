"""Stage `segment`: cut utterances into a packed 16 kHz mono store, with train/val/test splits by conversation."""

import argparse
import logging
from pathlib import Path

from common import params, run, write_csv, write_json

from turnfusion.schema import LABEL_NAMES, read_utterances
from turnfusion.segments import build_store
from turnfusion.splits import SPLITS, add_split_column


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--utterances", required=True)
    parser.add_argument("--audio", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--report", required=True)
    parser.add_argument("--skipped", required=True, help="CSV with one row per skipped utterance and why")
    args = parser.parse_args()
    p, s = params("segment"), params("split")
    table = add_split_column(read_utterances(args.utterances), s["val_fraction"], s["test_fraction"], s["seed"])
    index, skipped = build_store(table, Path(args.audio), Path(args.out), p["sample_rate"], p["max_seconds"],
                                 p["channels"])
    write_csv(args.skipped, skipped)
    report = {"utterances": len(index), "skipped": len(skipped),
              **{f"skipped_{r}": int(n) for r, n in skipped.reason.value_counts().items()},
              "seconds": round(float(index.n_samples.sum() / p["sample_rate"]), 1),
              "store_mb": round((Path(args.out) / "audio.npy").stat().st_size / 2**20, 1)}
    for split in SPLITS:
        part = index[index.split == split]
        report[split] = {"conversations": int(part.video_id.nunique()), "utterances": len(part),
                         **{name: int((part.label == label).sum()) for label, name in LABEL_NAMES.items()}}
    write_json(args.report, report)
    logging.getLogger("segment").info("%d utterances in the store, %d skipped", len(index), len(skipped))


if __name__ == "__main__":
    run(main)

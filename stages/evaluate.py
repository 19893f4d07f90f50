"""Stage `evaluate`: test-split predictions of every model and baseline, metrics, plots and figures."""

import argparse
import json
import logging
from pathlib import Path

from stages.common import config, run, write_json
from turnfusion.config import TrainConfig
from turnfusion.evaluation.evaluate import evaluate, headline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--segments", required=True)
    parser.add_argument("--tokens", required=True)
    parser.add_argument("--trp", required=True)
    parser.add_argument("--embeddings", required=True)
    parser.add_argument("--models", required=True, nargs="+", help="mode=directory pairs, e.g. fusion=models/fusion")
    parser.add_argument("--out", required=True, help="directory for predictions, metrics, plots and PNGs")
    args = parser.parse_args()
    models = dict(pair.split("=", 1) for pair in args.models)
    metrics = evaluate(models, args.segments, args.tokens, args.trp, args.embeddings, args.out, config(TrainConfig))
    write_json(Path(args.out) / "report.json", metrics)  # everything: per class, slices, thresholds
    write_json(Path(args.out) / "metrics.json", headline(metrics))  # what `dvc metrics show / diff` compare
    summary = {k: {"macro_f1": round(r["macro_f1"], 4), "balanced_accuracy": round(r["balanced_accuracy"], 4)}
               for k, r in metrics.items() if isinstance(r, dict) and "macro_f1" in r}
    logging.getLogger("evaluate").info("test: %s", json.dumps(summary))


if __name__ == "__main__":
    run(main)

"""Stage `evaluate`: test-split predictions of every model and baseline, metrics, plots and figures."""

import argparse
import json
import logging
from pathlib import Path

from stages.common import config, run, write_json
from turnfusion.config import TrainConfig
from turnfusion.evaluate import evaluate, headline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--segments", required=True)
    parser.add_argument("--tokens", required=True)
    parser.add_argument("--trp", required=True)
    parser.add_argument("--embeddings", required=True)
    parser.add_argument("--models", required=True, nargs="+", help="mode=directory pairs, e.g. fusion=models/fusion")
    parser.add_argument("--exported", nargs="*", default=[],
                        help="mode=directory pairs of exported models (stage export), e.g. fusion=models/fusion-onnx")
    parser.add_argument("--out", required=True, help="directory for predictions, metrics, plots and PNGs")
    args = parser.parse_args()
    models = dict(pair.split("=", 1) for pair in args.models)
    metrics = evaluate(models, args.segments, args.tokens, args.trp, args.embeddings, args.out, config(TrainConfig),
                       dict(pair.split("=", 1) for pair in args.exported))
    write_json(Path(args.out) / "report.json", metrics)  # everything: per class, slices, thresholds, deployment
    write_json(Path(args.out) / "metrics.json", headline(metrics))  # what `dvc metrics show / diff` compare
    summary = {k: {"macro_f1": round(r["macro_f1"], 4), "balanced_accuracy": round(r["balanced_accuracy"], 4)}
               for k, r in metrics.items() if isinstance(r, dict) and "macro_f1" in r}
    logging.getLogger("evaluate").info("test: %s", json.dumps(summary))
    for name, rows in metrics.get("deployment", {}).items():
        logging.getLogger("evaluate").info("deployment of %s: %s", name, json.dumps(
            {k: {m: round(v, 4) for m, v in r.items() if m in ("macro_f1", "max_abs_dp", "agreement", "macro_f1_drop")}
             for k, r in rows.items()}))


if __name__ == "__main__":
    run(main)

"""Stage `evaluate`: test-split predictions of every model and baseline, metrics, plots and figures."""

import argparse
import json
import logging
from pathlib import Path

import pandas as pd
from common import params, run, write_csv, write_json

from turnfusion.device import pick_device
from turnfusion.evaluation import (fit_trp_threshold, majority_baseline, per_class_f1_frame, predictions_frame,
                                   save_figures, trp_baseline)
from turnfusion.features import examples_for, load_utterances
from turnfusion.metrics import classification_report
from turnfusion.models import TurnFusionModel
from turnfusion.training import TrainConfig, predict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--segments", required=True)
    parser.add_argument("--tokens", required=True)
    parser.add_argument("--trp", required=True)
    parser.add_argument("--embeddings", required=True)
    parser.add_argument("--models", required=True, nargs="+", help="mode=directory pairs, e.g. fusion=models/fusion")
    parser.add_argument("--out", required=True, help="directory for predictions, metrics, plots and PNGs")
    args = parser.parse_args()
    m, t = params("model"), params("train")
    cfg = TrainConfig(**t)
    store, tokens, table = load_utterances(args.segments, args.tokens, args.trp, m["audio_segments"])
    test, train, val = (table[table.split == s].reset_index(drop=True) for s in ("test", "train", "val"))
    examples = examples_for(test, cfg.encoders, args.embeddings, tokens, store)
    probabilities = {"majority": majority_baseline(train.label.to_numpy(), len(test))}
    threshold = fit_trp_threshold(val.trp.to_numpy(), val.label.to_numpy())
    probabilities["trp_threshold"] = trp_baseline(test.trp.to_numpy(), threshold)
    for pair in args.models:
        mode, directory = pair.split("=", 1)
        model = TurnFusionModel.from_pretrained(directory).to(pick_device(cfg.device))
        probabilities[mode] = predict(model, examples, cfg, pick_device(cfg.device), progress=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    predictions = pd.concat([predictions_frame(test, p, name) for name, p in probabilities.items()])
    predictions.to_parquet(out / "predictions.parquet", index=False)
    labels = test.label.to_numpy()
    reports = {name: classification_report(labels, p.argmax(1), p) for name, p in probabilities.items()}
    reports["trp_threshold"]["threshold"] = threshold
    write_json(out / "metrics.json", {"test_utterances": len(test), **reports})
    best = max((k for k in probabilities if k not in ("majority", "trp_threshold")), default="majority",
               key=lambda k: reports[k]["macro_f1"])
    chosen = predictions[predictions.model == best]
    write_json(out / "confusion.json", [{"actual": int(a), "predicted": int(b)}
                                        for a, b in zip(chosen.label, chosen.prediction)])
    write_csv(out / "per_class_f1.csv", per_class_f1_frame(reports))
    save_figures(predictions, reports, out, best)
    summary = {k: {"macro_f1": round(r["macro_f1"], 4), "balanced_accuracy": round(r["balanced_accuracy"], 4)}
               for k, r in reports.items()}
    logging.getLogger("evaluate").info("test: %s", json.dumps(summary))


if __name__ == "__main__":
    run(main)

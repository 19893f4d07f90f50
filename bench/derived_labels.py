"""Models trained on derived labels, scored on the labels a source knows (figures only): for each workspace given (a
checkout after `dvc repro`), its `models/fusion` predicts every row of the source's own table (`data/source/
utterances.csv`: the demo generator's labels) in the test split, through `predict-csv`, and the macro F1 against those
labels is printed with the floors of the same rows (majority class). Workspaces trained on given and on derived
labels are scored on the same rows by the same code, so their figures compare. Any model folder may be named
(`WORKSPACE:MODEL`): the audio model of calls without transcripts reads no words, so the rows' words are not read.

    python bench/derived_labels.py /tmp/exp_en_given /tmp/exp_en_derived
    python bench/derived_labels.py /tmp/exp_en:/tmp/saved/fusion_given /tmp/exp_en   # WORKSPACE[:MODEL]

The test split is the split stage's (by conversation, `split` params) over the recordings kept by `drop_silent`;
the script refuses workspaces whose test conversations differ.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from sklearn.metrics import f1_score


def test_rows(workspace: Path) -> pd.DataFrame:
    from turnfusion.data.splits import assign_splits
    from turnfusion.schema import read_utterances

    params = yaml.safe_load((workspace / "params.yaml").read_text())["split"]
    kept = pd.read_csv(workspace / "data/clean/utterances.csv", dtype={"video_id": str}, usecols=["video_id"])
    split_of = assign_splits(list(kept.video_id), params["val_fraction"], params["test_fraction"], params["seed"])
    given = read_utterances(workspace / "data/source/utterances.csv")
    return given[given.video_id.map(split_of) == "test"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workspaces", nargs="+", help="WORKSPACE[:MODEL] (MODEL: default WORKSPACE/models/fusion)")
    args = parser.parse_args()
    from turnfusion.serving.predict import TurnPredictor

    videos = None
    for spec in args.workspaces:
        workspace, _, model = spec.partition(":")
        workspace = Path(workspace)
        model = Path(model) if model else workspace / "models" / "fusion"
        rows = test_rows(workspace)
        if videos is not None and set(rows.video_id) != videos:
            sys.exit(f"{workspace}: its test conversations differ from the first workspace's")
        videos = set(rows.video_id)
        csv = workspace / "reports" / "given_test_rows.csv"
        rows.to_csv(csv, index=False)
        predicted = TurnPredictor(model).predict_csv(csv, workspace / "data" / "raw")
        done = predicted[predicted.skipped == ""]
        macro = f1_score(done.label, done.prediction.astype(int), average="macro", labels=[0, 1, 2])
        majority = f1_score(done.label, np.full(len(done), done.label.mode()[0]), average="macro", labels=[0, 1, 2])
        mode = json.loads((model / "config.json").read_text())["mode"]
        print(f"{model}: on the source's own test labels ({len(done)} of "
              f"{len(rows)} rows, {len(videos)} conversations): {mode} macro F1 {macro:.4f}, majority {majority:.4f}")


if __name__ == "__main__":
    main()

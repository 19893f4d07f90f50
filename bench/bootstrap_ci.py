"""Macro F1 of every model and baseline in an evaluate stage's predictions, with a 95 % interval from resampling
the test conversations (a cluster bootstrap: rows of one video stay together, as they are not independent).

    python bench/bootstrap_ci.py reports/evaluate/predictions.parquet [--resamples 1000] [--seed 0]
"""

import argparse

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score


def macro_f1(frame: pd.DataFrame) -> float:
    return float(f1_score(frame.label, frame.prediction, labels=[0, 1, 2], average="macro", zero_division=0))


def intervals(predictions: pd.DataFrame, resamples: int, seed: int) -> pd.DataFrame:
    """Per model: macro F1 on the whole test split and the 2.5 / 97.5 percentiles over `resamples` draws of its
    videos with replacement (the same draws for every model)."""
    rng = np.random.default_rng(seed)
    videos = np.array(sorted(predictions.video_id.unique()))
    draws = [rng.choice(videos, size=len(videos), replace=True) for _ in range(resamples)]
    rows = []
    for model, frame in predictions.groupby("model", sort=False):
        by_video = {v: part for v, part in frame.groupby("video_id")}
        scores = [macro_f1(pd.concat([by_video[v] for v in draw])) for draw in draws]
        rows.append({"model": model, "macro_f1": macro_f1(frame), "low": np.percentile(scores, 2.5),
                     "high": np.percentile(scores, 97.5)})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("predictions")
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    predictions = pd.read_parquet(args.predictions)
    table = intervals(predictions, args.resamples, args.seed)
    print(f"{args.predictions}: {predictions.video_id.nunique()} test videos, "
          f"{len(predictions) // predictions.model.nunique()} rows; {args.resamples} resamples of the videos")
    print("| model | macro F1 | 95 % interval |\n|---|---|---|")
    for row in table.itertuples():
        print(f"| {row.model} | {row.macro_f1:.3f} | {row.low:.3f}-{row.high:.3f} |")


if __name__ == "__main__":
    main()

"""Text path on real MM-F2F annotations: tokenize + teacher on a CSV (text only, split by video).

    python bench/mmf2f_text.py ../shared/mmf2f/val.csv --work /tmp/mmf2f_text

Prints the teacher's validation perplexity, TRP ROC-AUC for turn vs keep, mean TRP per class and wall times.
"""

import argparse
import json
import time
from pathlib import Path

from turnfusion.schema import read_utterances
from turnfusion.splits import add_split_column
from turnfusion.teacher import fit_and_score
from turnfusion.text import tokenize_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("csv")
    parser.add_argument("--work", default="/tmp/mmf2f_text")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=64)
    args = parser.parse_args()
    work = Path(args.work)
    started = time.perf_counter()
    table = read_utterances(args.csv).sort_values(["video_id", "start", "sentence_id"], kind="stable")
    table = table.assign(position=table.groupby("video_id").cumcount(), split=None).drop(columns="split")
    table = add_split_column(table, val_fraction=0.15, test_fraction=0.25, seed=0)
    report = tokenize_table(table, work / "tokens", "train", 4096, args.max_length)
    tokenize_s = time.perf_counter() - started
    trp, metrics = fit_and_score(work / "tokens", work / "teacher", None, 2, 128, 4, args.max_length, args.epochs,
                                 32, 1e-3, 0)
    total_s = time.perf_counter() - started
    print(json.dumps({"tokenize": report, "teacher": metrics, "tokenize_s": round(tokenize_s, 1),
                      "total_s": round(total_s, 1)}, indent=2))


if __name__ == "__main__":
    main()

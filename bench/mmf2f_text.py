"""Text path on real MM-F2F annotations: tokenize + teacher on a CSV (text only, split by video).

    python bench/mmf2f_text.py ../shared/mmf2f/val.csv --work /tmp/mmf2f_text

Prints the teacher's validation perplexity, TRP ROC-AUC for turn vs keep, mean TRP per class and wall times.
"""

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import yaml

from turnfusion.config import TeacherConfig, TextConfig, from_params
from turnfusion.data.splits import add_split_column
from turnfusion.data.tokenize import tokenize_table
from turnfusion.schema import conversation_order, read_utterances
from turnfusion.training.teacher import fit_and_score


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("csv")
    parser.add_argument("--work", default="/tmp/mmf2f_text")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=64)
    args = parser.parse_args()
    work = Path(args.work)
    started = time.perf_counter()
    params = yaml.safe_load(Path("params.yaml").read_text())  # the project's defaults, with the overrides below
    text = replace(from_params(TextConfig, params), tokenizer="train", vocab_size=4096, max_length=args.max_length)
    teacher = replace(from_params(TeacherConfig, params), base=None, epochs=args.epochs, crossfit_folds=0)
    table = conversation_order(read_utterances(args.csv))
    table = table.assign(position=table.groupby("video_id").cumcount())
    table = add_split_column(table, val_fraction=0.15, test_fraction=0.25, seed=0)
    report = tokenize_table(table, work / "tokens", text)
    tokenize_s = time.perf_counter() - started
    trp, metrics = fit_and_score(work / "tokens", work / "teacher", teacher, args.max_length)
    total_s = time.perf_counter() - started
    print(json.dumps({"tokenize": report, "teacher": metrics, "tokenize_s": round(tokenize_s, 1),
                      "total_s": round(total_s, 1)}, indent=2))


if __name__ == "__main__":
    main()

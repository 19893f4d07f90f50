"""Stage `teacher`: train the TurnGPT-style LM on the training split and write TRP for every utterance."""

import argparse
import logging
from pathlib import Path

from stages.common import config, run, write_csv, write_json
from turnfusion.config import ModelConfig, TeacherConfig, TextConfig, TrainConfig
from turnfusion.training.teacher import fit_and_score, trp_histogram


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", required=True)
    parser.add_argument("--model-out", required=True)
    parser.add_argument("--trp-out", required=True, help="parquet: sentence_id, video_id, split, label, trp")
    parser.add_argument("--metrics", required=True)
    parser.add_argument("--hist", required=True, help="CSV of the test split's TRP distribution per class")
    args = parser.parse_args()
    # the train split's TRP is cross-fitted (teacher.crossfit_folds: auto) only when a model reads it
    train_trp_read = config(ModelConfig).use_trp or config(TrainConfig).distill_weight > 0
    table, metrics = fit_and_score(args.tokens, args.model_out, config(TeacherConfig), config(TextConfig).max_length,
                                   train_trp_read=train_trp_read)
    Path(args.trp_out).parent.mkdir(parents=True, exist_ok=True)
    table.to_parquet(args.trp_out, index=False)
    write_json(args.metrics, metrics)
    test = table[table.split == "test"]
    write_csv(args.hist, trp_histogram(test.trp.to_numpy(), test.label.to_numpy()))
    logging.getLogger("teacher").info("%s", metrics)


if __name__ == "__main__":
    run(main)

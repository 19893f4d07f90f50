"""Stage `tokenize`: dialogue contexts (previous utterances + current, speaker and turn-shift tokens),
a tokenizer (trained on the training split only, or loaded by name/path), packed token ids, and the whole processor
config (the segment store's audio policy, the text params, whether the corpus has words)."""

import argparse
import logging

import pandas as pd

from stages.common import config, run, write_json
from turnfusion.config import TextConfig
from turnfusion.data.stores import read_audio_policy
from turnfusion.data.tokenize import tokenize_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--segments", required=True, help="segment index (parquet)")
    parser.add_argument("--audio-policy", required=True, help="the segment store's audio policy (JSON)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--report", required=True)
    args = parser.parse_args()
    report = tokenize_table(pd.read_parquet(args.segments), args.out, config(TextConfig),
                            read_audio_policy(args.audio_policy))
    write_json(args.report, report)
    logging.getLogger("tokenize").info("%s", report)


if __name__ == "__main__":
    run(main)

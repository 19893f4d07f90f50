"""Stage `segment`: cut utterances into a packed 16 kHz mono store, with train/val/test splits by conversation."""

import argparse
import logging

from stages.common import config, run, write_csv, write_json
from turnfusion.config import SegmentConfig, SplitConfig
from turnfusion.data.segment import segment
from turnfusion.schema import read_utterances


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--utterances", required=True)
    parser.add_argument("--audio", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--report", required=True)
    parser.add_argument("--skipped", required=True, help="CSV with one row per skipped utterance and why")
    args = parser.parse_args()
    index, skipped, report = segment(read_utterances(args.utterances), args.audio, args.out, config(SegmentConfig),
                                     config(SplitConfig))
    write_csv(args.skipped, skipped)
    write_json(args.report, report)
    logging.getLogger("segment").info("%d utterances in the store, %d skipped", len(index), len(skipped))


if __name__ == "__main__":
    run(main)

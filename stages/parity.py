"""Stage `parity`: what deployment changes, on the test split: a trained model run by PyTorch on raw inputs
against its exported graphs (fp32, int8), and the fp32 graphs on telephone-band audio."""

import argparse
import json
import logging
from pathlib import Path

from stages.common import config, run, write_json
from turnfusion.config import TrainConfig
from turnfusion.evaluation.parity import headline, parity
from turnfusion.threads import thread_count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="a trained model directory (stage train)")
    parser.add_argument("--exported", required=True, help="its export (stage export)")
    parser.add_argument("--segments", required=True)
    parser.add_argument("--tokens", required=True)
    parser.add_argument("--trp", required=True)
    parser.add_argument("--out", required=True, help="directory for report.json and metrics.json")
    args = parser.parse_args()
    rows = parity(Path(args.model), Path(args.exported), args.segments, args.tokens, args.trp, config(TrainConfig),
                  workers=thread_count())
    write_json(Path(args.out) / "report.json", rows)  # every row: per class, deltas
    write_json(Path(args.out) / "metrics.json", headline(rows))  # what `dvc metrics show / diff` compare
    logging.getLogger("parity").info("%s", json.dumps(
        {k: {m: round(v, 4) for m, v in r.items() if m in ("macro_f1", "max_abs_dp", "agreement", "macro_f1_drop")}
         for k, r in rows.items()}))


if __name__ == "__main__":
    run(main)

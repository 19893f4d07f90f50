"""Stage `onset_gate`: the barge-in gate of the live path (`turnfusion.live.onset_gate`), trained on the speech
onsets of the two-channel recordings: listener responses (backchannels) against utterance starts, its threshold
chosen on val; the report holds each split's figures beside a level-only gate and the examples left out."""

import argparse
import logging

import numpy as np
import pandas as pd

from stages.common import config, run, write_json
from turnfusion.config import OnsetGateConfig
from turnfusion.errors import DataError
from turnfusion.live.onset_gate import OnsetGate
from turnfusion.threads import usable_cores
from turnfusion.training.onset_gate import (
    OVERLAP_COLUMNS_READ,
    example_windows,
    fit_gate,
    level_floor,
    onset_examples,
)

log = logging.getLogger("stage")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--segments", required=True, help="the segment stage's segments.parquet")
    parser.add_argument("--overlaps", required=True, help="the label stage's overlaps.csv")
    parser.add_argument("--audio", required=True, help="the recordings")
    parser.add_argument("--out", required=True, help="the gate's directory")
    parser.add_argument("--report", required=True)
    args = parser.parse_args()
    cfg = config(OnsetGateConfig)
    examples, left_out = onset_examples(pd.read_parquet(args.segments), read_overlaps(args.overlaps))
    features, levels, found = example_windows(examples, args.audio, cfg.window_s, cfg.seed,
                                              workers=usable_cores())
    kinds = np.array([examples[i].kind for i in found], dtype=int)
    splits = np.array([examples[i].split for i in found], dtype=object)
    report = {"onsets": len(examples), "windows": len(found), "no_window": len(examples) - len(found), **left_out}
    try:
        gate = fit_gate(features, kinds, splits, cfg)
    except DataError as exc:  # a corpus without two-channel recordings: the live path keeps its word and time gates
        log.warning("%s: no onset gate trained", exc)
        OnsetGate.save_untrained(args.out, str(exc))
        write_json(args.report, {**report, "trained": False, "why": str(exc)})
        return
    gate.save(args.out)
    write_json(args.report, {**report, "trained": True, "window_s": cfg.window_s, "threshold": round(gate.threshold, 4),
                             "gate": gate.trained_on,
                             "floors": {"every_onset": "stops the agent on every backchannel",
                                        "level_only": level_floor(levels, kinds, splits, cfg)}})


def read_overlaps(path: str) -> pd.DataFrame:
    """The label stage's overlaps.csv; one line naming it when it is not a table with the columns read."""
    try:
        table = pd.read_csv(path, dtype={"video_id": str})
    except (OSError, ValueError) as exc:  # missing, empty (pandas' EmptyDataError), malformed
        raise DataError(f"{path}: not an overlaps table ({' '.join(str(exc).split())[:160]})") from None
    missing = [c for c in OVERLAP_COLUMNS_READ if c not in table.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}")
    return table


if __name__ == "__main__":
    run(main)

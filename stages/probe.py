"""Stage `probe`: calibration probes (logistic regressions on text n-grams, on final-pitch/energy features,
and on both), fitted on train and scored on test, to check how much each modality says about the label."""

import argparse

from stages.common import run, write_json
from turnfusion.data.stores import SegmentStore
from turnfusion.evaluation.probe import probe_store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--segments", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    write_json(args.out, {k: round(v, 4) for k, v in probe_store(SegmentStore.open(args.segments)).items()})


if __name__ == "__main__":
    run(main)

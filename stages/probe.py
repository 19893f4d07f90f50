"""Stage `probe`: calibration probes (logistic regressions on text n-grams, on final-pitch/energy features,
and on both), fitted on train and scored on test, to check how much each modality says about the label."""

import argparse

import numpy as np
from common import run, write_json

from turnfusion.probes import prosody_features, run_probes
from turnfusion.segments import SegmentStore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--segments", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    store = SegmentStore.open(args.segments)
    index = store.index
    features = np.stack([prosody_features(store.waveform(i), store.sample_rate) for i in range(len(index))])
    train, test = (index.split == "train").to_numpy(), (index.split == "test").to_numpy()
    scores = run_probes(index[train], index[test], features[train], features[test])
    write_json(args.out, {k: round(v, 4) for k, v in scores.items()})


if __name__ == "__main__":
    run(main)

"""How well the final prosody of the demo corpus can be heard, by two perceivers of the audio alone:

- the prosody probe: `turnfusion.evaluation.probe.feature_probe` on the four `prosody_features` (final pitch level and
  slope, energy drop, voiced seconds);
- a gradient-boosted classifier on the final contour: `pretrain_audio.contour_summary` of the segment's
  `frame_targets` (pitch, voicing and energy of its last `--span` seconds in 12 bins), what
  `pretrain_audio.summary_weight` teaches the encoder to predict from the frames the model pools.

Each is fitted on the train split, to the spoken category (`prosody`: level, fall, rise) and to the label;
the table gives P(heard | spoken) per category on val and the label's macro F1 on val and test.

    python bench/prosody_perceivers.py [--segments data/segments] [--span 1.2]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from demo_bayes import prosody_hearing
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import f1_score

from turnfusion.audio import keep_end
from turnfusion.data.stores import SegmentStore
from turnfusion.evaluation.probe import feature_probe
from turnfusion.training.pretrain_audio import contour_summary
from turnfusion.training.prosody import FRAME_S, frame_targets, prosody_features


def contour_features(wave: np.ndarray, sample_rate: int, span_s: float, crop_s: float = 1.5) -> np.ndarray:
    """The contour summary of a segment's frame targets, computed as pretraining does (on its last `crop_s`,
    the default `pretrain_audio.crop_s`)."""
    targets = frame_targets(keep_end(wave, int(crop_s * sample_rate)), sample_rate)
    return contour_summary(torch.from_numpy(targets), int(round(span_s / FRAME_S))).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--segments", default="data/segments")
    parser.add_argument("--span", type=float, default=1.2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    store = SegmentStore.open(args.segments)
    index = store.index
    if "prosody" not in index:
        raise SystemExit(f"{args.segments}: no prosody column in its index: not a demo corpus")
    waves = [store.waveform(i) for i in range(len(index))]
    perceivers = {
        "prosody probe (4 features, logistic regression)":
            (np.stack([prosody_features(w, store.sample_rate) for w in waves]), lambda: feature_probe(args.seed)),
        f"final contour ({args.span} s, 12 bins x pitch/voicing/energy; gradient boosting)":
            (np.stack([contour_features(w, store.sample_rate, args.span) for w in waves]),
             lambda: HistGradientBoostingClassifier(max_iter=300, learning_rate=0.05, random_state=args.seed)),
    }
    split = {name: (index.split == name).to_numpy() for name in ("train", "val", "test")}
    labels = index.label.to_numpy()
    print("| perceiver | P(heard | spoken) on val: level / fall / rise | heard as level when rise | "
          "label macro F1 val / test |\n|---|---|---|---|")
    for name, (features, make) in perceivers.items():
        hearing, _ = prosody_hearing(index, features, classifier=make())
        model = make().fit(features[split["train"]], labels[split["train"]])
        scores = [f1_score(labels[split[s]], model.predict(features[split[s]]), average="macro")
                  for s in ("val", "test")]
        print(f"| {name} | {' / '.join(f'{v:.3f}' for v in np.diag(hearing))} | {hearing[2, 0]:.3f} | "
              f"{scores[0]:.3f} / {scores[1]:.3f} |")


if __name__ == "__main__":
    main()

"""The rehearsal's rendering floor (figures only): speak an annotation CSV in the MM-F2F schema as the source stage
does (`mmf2f.recordings: rehearsal`), cut every row as the segment stage does, and measure what a classifier of the
audio's layout alone (`floors.rendering_only`: seconds, speech, silences, words per second of speech) reaches,
beside the duration floor: 5-fold cross-validation grouped by video.

    python bench/rendering_floor.py ../shared/mmf2f/val.csv [--channels speaker] [--max-seconds 3.0]

A rendering whose floor is above the duration floor puts something of the label into the audio.
"""

import argparse
import json
import tempfile
from pathlib import Path

from turnfusion.audio import read_resampled
from turnfusion.config import Mmf2fConfig
from turnfusion.data.sources.mmf2f import import_mmf2f
from turnfusion.evaluation.floors import (
    cross_validated_macro_f1,
    floor_classifier,
    frame_levels,
    rendering_features,
    speech_threshold,
)
from turnfusion.schema import conversation_order, read_utterances
from turnfusion.serving.processing import cut_row, segment_policy

RATE = 16000


def trees(name: str):
    """The floor's features through class-balanced gradient-boosted trees: a leak a linear model misses (a silent
    row, a sped-up one) shows here."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import make_pipeline

    features = floor_classifier(name).steps[0][1]
    return make_pipeline(features, HistGradientBoostingClassifier(class_weight="balanced", max_iter=200,
                                                                   random_state=0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("csv")
    parser.add_argument("--channels", default="speaker", choices=["speaker", "mix"])
    parser.add_argument("--max-seconds", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as out:
        import_mmf2f(Mmf2fConfig(annotations={"val": args.csv}, recordings="rehearsal"), Path(out), args.seed)
        rehearsal = json.loads((Path(out) / "rehearsal.json").read_text())
        table = conversation_order(read_utterances(Path(out) / "utterances.csv"))
        kept, levels = [], []
        for video_id, rows in table.groupby("video_id", sort=True):
            recording = read_resampled(Path(out) / "remote" / f"{video_id}.flac", RATE)
            for i, row in zip(rows.index, rows.itertuples(index=False), strict=True):
                wave, problem = cut_row(recording, RATE, row, args.channels)
                if not problem:
                    kept.append(i)
                    levels.append(frame_levels(segment_policy(wave, RATE, args.max_seconds, None)[0], RATE))
    table = table.loc[kept].reset_index(drop=True)
    table = table.join(rendering_features(levels, table.text, speech_threshold(levels)))
    print(f"{args.csv}: {len(table)} rows cut, {table.video_id.nunique()} videos; channels {args.channels}, "
          f"last {args.max_seconds} s; rehearsal {json.dumps({k: v for k, v in rehearsal.items() if k != 'note'})}")
    print("| classifier of | logistic regression | boosted trees |\n|---|---|---|")
    for name in ("rendering_only", "duration_only"):
        scores = [cross_validated_macro_f1(classifier, table) for classifier in (floor_classifier(name), trees(name))]
        print(f"| {name} | {scores[0]:.3f} | {scores[1]:.3f} |", flush=True)


if __name__ == "__main__":
    main()

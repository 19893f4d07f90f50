"""No-cue floors and simple text classifiers on an annotation CSV in the MM-F2F schema (figures only): 5-fold
cross-validation grouped by video, with the project's context rule (`text.build_contexts`).

    python bench/context_floors.py ../shared/mmf2f/val.csv [--n-previous 2] [--trim-overlap]

Rows: the context skeleton alone (speaker and <ts> tokens, no words), duration alone, TF-IDF of the current
utterance's words, and the skeleton with those words. A text model's figure means something only above the
first two.
"""

import argparse

from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from turnfusion.floors import FLOORS, cross_validated_macro_f1, floor_classifier, skeleton
from turnfusion.schema import read_utterances
from turnfusion.text import build_contexts


def words_classifier(with_skeleton: bool):
    parts = [("words", TfidfVectorizer(ngram_range=(1, 2), min_df=2), "text")]
    if with_skeleton:
        parts.append(("skeleton", CountVectorizer(token_pattern=r"\S+", ngram_range=(1, 3), lowercase=False),
                      "skeleton"))
    return make_pipeline(FunctionTransformer(lambda t: t.assign(skeleton=t["context"].map(skeleton))),
                         ColumnTransformer(parts), LogisticRegression(max_iter=2000, class_weight="balanced"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("csv")
    parser.add_argument("--n-previous", type=int, default=2)
    parser.add_argument("--trim-overlap", action="store_true")
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args()
    table = read_utterances(args.csv)
    table = build_contexts(table[table.video_id.notna()], args.n_previous, trim_overlap=args.trim_overlap)
    print(f"{args.csv}: {len(table)} rows, {table.video_id.nunique()} videos; n_previous {args.n_previous}, "
          f"trim_overlap {args.trim_overlap}; {args.folds}-fold CV grouped by video, class-balanced logistic "
          "regression")
    print("| classifier of | macro F1 |\n|---|---|")
    rows = {**{name: floor_classifier(name) for name in FLOORS},
            "words of the current utterance (TF-IDF 1-2 grams)": words_classifier(False),
            "skeleton + words": words_classifier(True)}
    for name, classifier in rows.items():
        print(f"| {name} | {cross_validated_macro_f1(classifier, table, args.folds):.3f} |", flush=True)


if __name__ == "__main__":
    main()

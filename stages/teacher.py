"""Stage `teacher`: train the TurnGPT-style LM on the training split and write TRP for every utterance."""

import argparse
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from common import params, run, write_csv, write_json

from turnfusion.schema import LABEL_NAMES
from turnfusion.teacher import build_teacher, lm_sequences, next_tokens, save_teacher, score_trp, \
    train_teacher, trp_report
from turnfusion.text import PackedTokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", required=True)
    parser.add_argument("--model-out", required=True)
    parser.add_argument("--trp-out", required=True, help="parquet: sentence_id, split, label, trp")
    parser.add_argument("--metrics", required=True)
    parser.add_argument("--hist", required=True, help="CSV of the TRP distribution per class (a DVC plot)")
    args = parser.parse_args()
    p = params("teacher")
    tokens = PackedTokens(args.tokens)
    tokenizer, index = tokens.tokenizer(), tokens.index
    contexts = [tokens.row(i) for i in range(len(index))]
    seqs = lm_sequences(contexts, next_tokens(index, tokenizer))
    split = index.split.to_numpy()
    model = build_teacher(tokenizer, p["base"], p["n_layer"], p["n_embd"], p["n_head"],
                          n_positions=params("text")["max_length"] + 1)
    result = train_teacher(model, [s for s, sp in zip(seqs, split) if sp == "train"],
                           [s for s, sp in zip(seqs, split) if sp == "val"], tokenizer.pad_token_id,
                           p["epochs"], p["batch_size"], p["lr"], p["seed"], p["device"])
    save_teacher(model, tokenizer, Path(args.model_out))
    trp = score_trp(model, contexts, tokenizer, p["batch_size"])
    out = index[["sentence_id", "video_id", "split", "label"]].assign(trp=trp)
    Path(args.trp_out).parent.mkdir(parents=True, exist_ok=True)
    out.to_parquet(args.trp_out, index=False)
    labels = index.label.to_numpy()
    metrics = {"val_perplexity": round(result["val_perplexity"], 4)}
    for name in ("val", "test"):
        part = split == name
        metrics[name] = {k: round(v, 4) for k, v in trp_report(trp[part], labels[part], LABEL_NAMES).items()}
    write_json(args.metrics, metrics)
    bins = np.linspace(0, 1, 21)
    hist = pd.DataFrame({"trp": np.round(bins[:-1] + 0.025, 3)})
    for label, name in LABEL_NAMES.items():
        counts, _ = np.histogram(trp[(labels == label) & (split == "test")], bins=bins)
        hist[name] = counts / max(counts.sum(), 1)
    write_csv(args.hist, hist)
    logging.getLogger("teacher").info("val perplexity %.2f; test %s", result["val_perplexity"], metrics["test"])


if __name__ == "__main__":
    run(main)

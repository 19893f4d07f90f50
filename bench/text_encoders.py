"""Text encoders on real words: one text model variant trained on an MM-F2F annotation table and scored on val and
test, with the project's own code for every step (the tokenize stage's `tokenize_table`, `build_text_encoder`, the
embedding cache, `TurnFusionModel`, the training loop with early stopping on val), split by video as the DAG splits
it (`split` params). Beside it, on the same split: the skeleton floor and TF-IDF. Text only: no audio is rendered.

    python bench/text_encoders.py ../shared/mmf2f/val.csv --out /tmp/text_encoders/pair_current \\
        --encoder <all-MiniLM-L6-v2 folder> --input-form pair --text-span current --text-pooling mean

`--encoder teacher` trains the teacher (a small GPT-2 LM, `teacher` params) on the training split first and
fine-tunes it: the shipped default. Prints and writes `<out>/result.json`: val (best epoch) and test macro F1,
test per-class F1, a 95 % interval from resampling the test videos, wall times; `<out>/predictions.parquet` the
test predictions of the variant and the floors (`bench/bootstrap_ci.py` reads it).
"""

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from transformers import HubertConfig, HubertModel

sys.path.insert(0, str(Path(__file__).parent))
from bootstrap_ci import intervals  # noqa: E402

from turnfusion.config import ModelConfig, SplitConfig, TeacherConfig, TextConfig, TrainConfig, from_params  # noqa: E402
from turnfusion.data.splits import add_split_column  # noqa: E402
from turnfusion.data.stores import AUDIO_CACHE, AUDIO_INDEX, TEXT_CACHE, PackedTokens  # noqa: E402
from turnfusion.data.tokenize import tokenize_table  # noqa: E402
from turnfusion.evaluation.evaluate import tfidf_baseline  # noqa: E402
from turnfusion.evaluation.floors import floor_probabilities  # noqa: E402
from turnfusion.evaluation.metrics import classification_report  # noqa: E402
from turnfusion.models import TurnFusionModel  # noqa: E402
from turnfusion.schema import conversation_order, read_utterances  # noqa: E402
from turnfusion.text.contexts import build_contexts  # noqa: E402
from turnfusion.training.embed import write_text_cache  # noqa: E402
from turnfusion.training.encoders import build_text_encoder  # noqa: E402
from turnfusion.training.loop import predict, seed_everything  # noqa: E402
from turnfusion.training.schedules import EncoderSchedule  # noqa: E402
from turnfusion.training.teacher import fit_and_score  # noqa: E402
from turnfusion.training.train import train  # noqa: E402


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("csv")
    parser.add_argument("--out", required=True)
    parser.add_argument("--encoder", default="teacher", help="teacher, or a GPT-2 / BERT folder or hub name")
    parser.add_argument("--tokenizer", help="default: the encoder's folder (train for --encoder teacher)")
    parser.add_argument("--input-form", default="context", choices=["context", "pair"])
    parser.add_argument("--text-span", default="all", choices=["all", "current", "cls"])
    parser.add_argument("--text-pooling", help="default: params.yaml's model.text_pooling")
    parser.add_argument("--encoders", default="text", choices=["text", "frozen"], help="train.encoders")
    for name, kind in (("epochs", int), ("lr-encoder", float), ("lr-head", float), ("warmup-steps", int),
                       ("batch-size", int), ("patience", int), ("max-length", int), ("seed", int)):
        parser.add_argument(f"--{name}", type=kind, help="default: params.yaml's")
    return parser.parse_args()


def configs(args, params: dict) -> tuple[TextConfig, ModelConfig, TrainConfig]:
    """The project's params with this variant's overrides."""
    text = from_params(TextConfig, params)
    text = replace(text, input_form=args.input_form, max_length=args.max_length or text.max_length,
                   tokenizer=args.tokenizer or ("train" if args.encoder == "teacher" else args.encoder))
    model = from_params(ModelConfig, params)
    model = replace(model, text_encoder=args.encoder, text_span=args.text_span,
                    text_pooling=args.text_pooling or model.text_pooling)
    train_cfg = replace(from_params(TrainConfig, params), encoders=args.encoders, device="cpu",
                        **{k: getattr(args, k) for k in ("epochs", "lr_encoder", "lr_head", "warmup_steps",
                                                         "batch_size", "patience", "seed")
                           if getattr(args, k) is not None})
    return text, model, train_cfg


def write_cache(directory: Path, encoder, tokens: PackedTokens, frozen: bool) -> None:
    """An embedding cache of the text alone: every token's hidden state when the encoder stays frozen (the embed
    stage's own writer), none when it trains; no audio."""
    directory.mkdir(parents=True, exist_ok=True)
    if frozen:
        write_text_cache(encoder, tokens, directory / TEXT_CACHE, 64, progress=False)
    else:
        np.save(directory / TEXT_CACHE, np.zeros((0, encoder.config.hidden_size), np.float16))
    np.save(directory / AUDIO_CACHE, np.zeros((0, 1), np.float16))
    pd.DataFrame({"sentence_id": [], "frame_offset": [], "n_frames": []}).to_parquet(directory / AUDIO_INDEX)


def main() -> None:
    args = arguments()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    params = yaml.safe_load(Path("params.yaml").read_text())
    text_cfg, model_cfg, train_cfg = configs(args, params)
    split = from_params(SplitConfig, params)
    started = time.perf_counter()
    table = conversation_order(read_utterances(args.csv))
    table = add_split_column(table.assign(position=table.groupby("video_id").cumcount()), split.val_fraction,
                             split.test_fraction, split.seed)
    tokenize_table(table, out / "tokens", text_cfg)
    tokens = PackedTokens(out / "tokens")
    if args.encoder == "teacher":
        teacher = replace(from_params(TeacherConfig, params), device="cpu")
        fit_and_score(out / "tokens", out / "teacher", teacher, text_cfg.max_length, progress=False)
    seed_everything(model_cfg.seed)
    encoder = build_text_encoder(args.encoder, tokens.tokenizer(), model_cfg.text_config, out / "teacher",
                                 text_cfg.max_length + 1, text_cfg.input_form)
    write_cache(out / "cache", encoder, tokens, args.encoders == "frozen")
    audio = HubertModel(HubertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=1, intermediate_size=8,
                                     conv_dim=[8], conv_kernel=[10], conv_stride=[5], num_conv_pos_embeddings=2,
                                     num_conv_pos_embedding_groups=1))  # never run: a text model has no audio
    seed_everything(train_cfg.seed)
    model = TurnFusionModel.from_encoders(encoder, audio, "text", model_cfg, text_cfg.input_form)
    index = tokens.index.assign(token_row=np.arange(len(tokens.index)), audio_rows=[np.array([-1])] * len(tokens.index),
                                trp=np.nan)
    inputs = EncoderSchedule.of(train_cfg).inputs
    sets = {s: inputs.examples(index[index.split == s].reset_index(drop=True), out / "cache", tokens, None, model)
            for s in ("train", "val", "test")}
    prepared_s = time.perf_counter() - started
    state = train(model, sets["train"], sets["val"], train_cfg, out / "model", out / "checkpoints", progress=False)
    trained_s = time.perf_counter() - started - prepared_s
    test = sets["test"].table
    probs = predict(model, sets["test"], 64, torch.device("cpu"), inputs.collate)
    report = classification_report(test.label.to_numpy(), probs.argmax(1), probs)
    predictions = test[["sentence_id", "video_id", "label"]].assign(prediction=probs.argmax(1), model="model")
    frames = {s: index[index.split == s].reset_index(drop=True) for s in ("train", "val", "test")}
    floors = {}  # the skeleton floor of each context form: speaker and <ts> tokens, or a pair's relative marks
    for form in ("context", "pair"):
        skeletons = build_contexts(table, text_cfg.n_previous, text_cfg.punctuation, text_cfg.trim_overlap,
                                   form=form).set_index("sentence_id").context
        framed = {s: f.assign(context=f.sentence_id.map(skeletons)) for s, f in frames.items()}
        floors[f"skeleton_{form}"] = {s: floor_probabilities(framed["train"], framed[s], 3)["skeleton_only"]
                                      for s in ("val", "test")}
    tfidf, tfidf_c = tfidf_baseline(frames["train"], frames["val"], frames["test"])
    for name, p in [*((k, v["test"]) for k, v in floors.items()), ("tfidf_logreg", tfidf)]:
        predictions = pd.concat([predictions, frames["test"][["sentence_id", "video_id", "label"]]
                                 .assign(prediction=p.argmax(1), model=name)])
    predictions.to_parquet(out / "predictions.parquet", index=False)  # for paired comparisons between variants
    ci = intervals(predictions, 1000, 0).set_index("model")
    best = state["history"][state["best_epoch"] - 1]
    result = {
        "variant": {k: v for k, v in vars(args).items() if k not in ("csv", "out")},
        "rows": {s: len(f) for s, f in frames.items()},
        "videos": {s: int(f.video_id.nunique()) for s, f in frames.items()},
        "val_macro_f1": round(best["val_macro_f1"], 4), "best_epoch": state["best_epoch"],
        "epochs_run": state["epoch"], "history": [{k: round(v, 4) for k, v in h.items()} for h in state["history"]],
        "test_macro_f1": round(report["macro_f1"], 4),
        "test_interval": [round(ci.loc["model", "low"], 4), round(ci.loc["model", "high"], 4)],
        "test_per_class_f1": {k: round(report[k]["f1"], 4) for k in ("keep", "shift", "backchannel")},
        "floors": {**{name: {"val": round(classification_report(frames["val"].label.to_numpy(),
                                                                p["val"].argmax(1))["macro_f1"], 4),
                             "test": round(ci.loc[name, "macro_f1"], 4),
                             "test_interval": [round(ci.loc[name, "low"], 4), round(ci.loc[name, "high"], 4)]}
                      for name, p in floors.items()},
                   "tfidf_logreg": {"C": tfidf_c, "test": round(ci.loc["tfidf_logreg", "macro_f1"], 4),
                                    "test_interval": [round(ci.loc["tfidf_logreg", "low"], 4),
                                                      round(ci.loc["tfidf_logreg", "high"], 4)]}},
        "seconds": {"prepare": round(prepared_s, 1), "train": round(trained_s, 1),
                    "per_epoch": round(trained_s / max(state["epoch"], 1), 1)},
    }
    (out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

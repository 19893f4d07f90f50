"""Stage `train@<mode>`: train the text-only, audio-only or fusion model; the best epoch is one model directory."""

import argparse
import logging
from pathlib import Path

from common import params, run

from turnfusion.device import seed_everything
from turnfusion.features import ENCODERS_DIR, examples_for, load_utterances
from turnfusion.models import TurnFusionConfig, TurnFusionModel
from turnfusion.training import TrainConfig, train


def build_model(mode: str, m: dict, encoders_dir: Path, preprocessing: dict) -> TurnFusionModel:
    """A fresh model whose encoders are the ones the embedding cache was made with."""
    from transformers import GPT2Model, HubertModel

    text_encoder = GPT2Model.from_pretrained(str(encoders_dir / "text"))
    audio_encoder = HubertModel.from_pretrained(str(encoders_dir / "audio"))
    config = TurnFusionConfig(
        mode=mode, text_config=text_encoder.config.to_dict(), audio_config=audio_encoder.config.to_dict(),
        text_pooling=m["text_pooling"], audio_pooling=m["audio_pooling"], last_k=m["last_k"],
        audio_segments=m["audio_segments"], fusion_head=m["fusion_head"], hidden_size=m["hidden_size"],
        dropout=m["dropout"], tensor_rank=m["tensor_rank"], modality_dropout=m["modality_dropout"],
        use_trp=m["use_trp"], preprocessing=preprocessing)
    model = TurnFusionModel(config)
    if config.uses_text:
        model.text_encoder.load_state_dict(text_encoder.state_dict())
    if config.uses_audio:
        model.audio_encoder.load_state_dict(audio_encoder.state_dict())
    return model


def main() -> None:
    from dvclive import Live

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mode", required=True, choices=["text", "audio", "fusion"])
    parser.add_argument("--segments", required=True)
    parser.add_argument("--tokens", required=True)
    parser.add_argument("--trp", required=True)
    parser.add_argument("--embeddings", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--checkpoints", required=True)
    parser.add_argument("--live", required=True, help="DVCLive directory")
    args = parser.parse_args()
    m, t = params("model"), params("train")
    cfg = TrainConfig(**t)
    store, tokens, table = load_utterances(args.segments, args.tokens, args.trp, m["audio_segments"])
    seed_everything(cfg.seed)  # the head's initial weights
    tx, sg = params("text"), params("segment")
    preprocessing = {"sample_rate": sg["sample_rate"], "max_seconds": sg["max_seconds"], "channels": sg["channels"],
                     "max_length": tx["max_length"], "n_previous": tx["n_previous"], "punctuation": tx["punctuation"]}
    model = build_model(args.mode, m, Path(args.embeddings) / ENCODERS_DIR, preprocessing)
    sets = {s: examples_for(table[table.split == s], cfg.encoders, args.embeddings, tokens, store)
            for s in ("train", "val")}
    with Live(args.live, save_dvc_exp=False, dvcyaml=None) as live:
        live.log_params({"mode": args.mode, **{f"model.{k}": v for k, v in m.items() if not isinstance(v, dict)},
                         **{f"train.{k}": v for k, v in t.items()}})
        state = train(model, sets["train"], sets["val"], cfg, Path(args.out), Path(args.checkpoints), live,
                      extra_fingerprint={"mode": args.mode, "model": m})
        best = state["history"][state["best_epoch"] - 1]
        live.summary.update({"best_epoch": state["best_epoch"], **{f"best_{k}": v for k, v in best.items()
                                                                     if k.startswith("val_")}})
    tokens.tokenizer().save_pretrained(args.out)
    logging.getLogger("train").info("%s: best epoch %d, %s", args.mode, state["best_epoch"], best)


if __name__ == "__main__":
    run(main)

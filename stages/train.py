"""Stage `train@<mode>`: train the text-only, audio-only or fusion model; the best epoch is one model directory."""

import argparse
import logging
from contextlib import nullcontext
from dataclasses import asdict

from stages.common import config, run
from turnfusion.choices import MODES
from turnfusion.config import ComputeConfig, ModelConfig, TrainConfig
from turnfusion.serving.processing import ProcessorConfig
from turnfusion.training.datasets import load_utterances
from turnfusion.training.distributed import launched_world, processes
from turnfusion.training.loop import seed_everything
from turnfusion.training.schedules import EncoderSchedule
from turnfusion.training.train import build_model, train


def main() -> None:
    from dvclive import Live

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mode", required=True, choices=MODES)
    parser.add_argument("--segments", required=True)
    parser.add_argument("--tokens", required=True)
    parser.add_argument("--trp", required=True)
    parser.add_argument("--embeddings", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--checkpoints", required=True)
    parser.add_argument("--live", required=True, help="DVCLive directory")
    args = parser.parse_args()
    m, t = config(ModelConfig), config(TrainConfig)
    store, tokens, table = load_utterances(args.segments, args.tokens, args.trp, m.audio_segments)
    # what made the training inputs (both stores), saved with the model
    processor = ProcessorConfig.of_token_store(args.tokens, store.audio_policy())
    seed_everything(t.seed)  # the head's initial weights
    model = build_model(args.mode, m, args.embeddings, processor.input_form, processor.words)
    inputs = EncoderSchedule.of(t).inputs
    sets = {s: inputs.examples(table[table.split == s], args.embeddings, tokens, store, model)
            for s in ("train", "val")}
    main_process = processes(t.device, "train.device").main  # launched as several: only the main one writes
    with Live(args.live, save_dvc_exp=False, dvcyaml=None) if main_process else nullcontext() as live:
        if live is not None:
            live.log_params({"mode": args.mode, "compute.processes": launched_world(),
                             **{f"model.{k}": v for k, v in asdict(m).items() if not isinstance(v, dict)},
                             **{f"train.{k}": v for k, v in asdict(t).items()}})
        state = train(model, sets["train"], sets["val"], t, args.out, args.checkpoints, live,
                      extra_fingerprint={"mode": args.mode, "model": asdict(m)},
                      precision=config(ComputeConfig).precision)
        best = state["history"][state["best_epoch"] - 1]
        if live is not None:
            live.summary.update({"best_epoch": state["best_epoch"],
                                 **{f"best_{k}": v for k, v in best.items() if k.startswith("val_")}})
    if main_process:
        tokens.tokenizer().save_pretrained(args.out)
        processor.save_pretrained(args.out)
        logging.getLogger("train").info("%s: best epoch %d, %s", args.mode, state["best_epoch"], best)


if __name__ == "__main__":
    run(main)

"""What tests/test_distributed.py runs under `torchrun --nproc_per_node N` (or plain python, as one process):

  train OUT [--accumulation A] [--die-at-epoch K] [--device D]
      the toy fusion model (no dropout, so that runs can be compared)
  embed PIPELINE OUT
      the embed stage's library call on a tests/pipeline.py root
"""

import argparse
import json
import logging
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import torch  # noqa: E402
from conftest import params_config  # noqa: E402
from toy import ToyCached, toy_model, train_cfg  # noqa: E402

import turnfusion.training.train as training  # noqa: E402
from turnfusion.config import EmbedConfig, ModelConfig  # noqa: E402
from turnfusion.training.distributed import processes  # noqa: E402


def train_toy(out: Path, accumulation: int, die_at_epoch: int | None, device: str = "cpu") -> None:
    cfg = train_cfg(epochs=4, batch_size=16, lr_head=3e-3, warmup_steps=1, patience=10,
                    grad_accumulation=accumulation, device=device)
    procs = processes(cfg.device)
    if die_at_epoch is not None:  # one process is killed while validating that epoch; the launcher stops the rest
        real, calls = training.predict_shared, {"n": 0}

        def dying(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == die_at_epoch and procs.rank == procs.world - 1:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(*args, **kwargs)

        training.predict_shared = dying
    state = training.train(toy_model(dropout=0.0, modality_dropout=0.0), ToyCached(96, 0), ToyCached(40, 1), cfg,
                           out / "model", out / "checkpoints", progress=False)
    if procs.main:
        (out / "history.json").write_text(json.dumps({"history": state["history"], "world": procs.world,
                                                      "threads": torch.get_num_threads()}))


def embed_pipeline(root: Path, out: Path) -> None:
    from pipeline import load_store

    from turnfusion.data.stores import PackedTokens
    from turnfusion.training.embed import embed

    cfg = params_config(ModelConfig, text_encoder=str(root / "enc_text"), audio_encoder=str(root / "enc_audio"))
    run = params_config(EmbedConfig, device="cpu", batch_size=3)
    tokens = PackedTokens(root / "tokens")
    embed(tokens, load_store(root), out, cfg, 12, root / "no_teacher", root / "no_pretrained", run)
    procs = processes(run.device)  # which process this was: the test checks that two took part
    (out.parent / f"{out.name}.rank{procs.rank}.json").write_text(json.dumps({"world": procs.world,
                                                                             "pid": os.getpid()}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("job", choices=["train", "embed"])
    parser.add_argument("paths", nargs="+", type=Path)
    parser.add_argument("--accumulation", type=int, default=1)
    parser.add_argument("--die-at-epoch", type=int)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    if args.job == "train":
        train_toy(args.paths[0], args.accumulation, args.die_at_epoch, args.device)
    else:
        embed_pipeline(*args.paths)

"""Benchmarks that print figures (no pass/fail): run after `make repro`.

    python bench/benchmark.py [--repeats 50]

1. Inference latency per utterance (current + two context utterances, 3 s of audio each), p50 / p95,
   on CPU: the default trained model, and distil-size encoders built from config
   (DistilGPT2: 6 layers x 768; DistilHuBERT: 2 layers x 768 with the standard 512-channel front end).
2. Training: epoch time with frozen encoders (cached embeddings) vs. re-encoding every epoch with the
   same encoders, their ratio, samples/s, and the peak memory of a `train@fusion` run.
"""

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml


def latency(predictor, repeats: int, rng, streaming: bool) -> tuple[float, float]:
    """Per-utterance latency with two context utterances of 3 s audio each.

    streaming=False: all three segments are new (cold). streaming=True: a live conversation, where the
    two context utterances were the current ones of the previous calls (their encodings are remembered).
    """
    rate = predictor.prep["sample_rate"]
    texts = ["i went to the market yesterday and", "you know it was really nice", "did you ever go to the museum"]
    times = []
    waves = [rng.normal(0, 0.1, 3 * rate).astype(np.float32) for _ in range(2)]
    for k in range(repeats + 3):
        waves.append(rng.normal(0, 0.1, 3 * rate).astype(np.float32))
        if not streaming:
            predictor._audio_cache.clear()
        context = [{"text": texts[j], "speaker": 0, "audio": waves[-3 + j], "sample_rate": rate} for j in range(2)]
        start = time.perf_counter()
        predictor.predict(texts[2], waves[-1], 1, context, sample_rate=rate)
        if k >= 3:  # warm-up
            times.append(time.perf_counter() - start)
    return 1000 * float(np.percentile(times, 50)), 1000 * float(np.percentile(times, 95))


def distil_size_predictor(model_dir: Path, tmp: Path):
    from transformers import AutoTokenizer

    from turnfusion.models import TurnFusionConfig, TurnFusionModel
    from turnfusion.predict import TurnPredictor

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    config = TurnFusionConfig(
        mode="fusion", text_config={"vocab_size": len(tokenizer), "n_layer": 6, "n_embd": 768, "n_head": 12,
                                    "n_positions": 1024},
        audio_config={"hidden_size": 768, "num_hidden_layers": 2, "num_attention_heads": 12,
                      "intermediate_size": 3072, "apply_spec_augment": False},
        preprocessing=TurnFusionModel.from_pretrained(str(model_dir)).config.preprocessing)
    TurnFusionModel(config).save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    return TurnPredictor(tmp)


def epoch_times(params: dict) -> dict:
    """One epoch of train@fusion from the cache vs. re-encoding the same inputs with the same encoders."""
    from dataclasses import replace

    from turnfusion.config import ModelConfig, TrainConfig, from_params
    from turnfusion.datasets import examples_for, load_utterances
    from turnfusion.train import build_model, collate_for

    m, t = from_params(ModelConfig, params), from_params(TrainConfig, params)
    store, tokens, table = load_utterances("data/segments", "data/tokens", "data/teacher/trp.parquet")
    train = table[table.split == "train"]
    model = build_model("fusion", m, "data/embeddings", {})
    model.requires_grad_(False)
    model.head.requires_grad_(True)
    optimizer = torch.optim.AdamW(model.head.parameters(), lr=1e-3)
    results = {}
    for name, encoders in [("frozen_cached", "frozen"), ("re_encoding", "gradual")]:
        dataset = examples_for(train, encoders, "data/embeddings", tokens, store)
        cfg = replace(t, batch_size=32, encoders=encoders)
        start = time.perf_counter()
        loader = torch.utils.data.DataLoader(dataset, batch_size=cfg.batch_size, shuffle=True,
                                             collate_fn=collate_for(cfg), generator=torch.Generator().manual_seed(0))
        for batch in loader:
            logits = model.batch_logits(batch)  # re_encoding: frozen encoders, but run again on every batch
            loss = torch.nn.functional.cross_entropy(logits, batch["label"])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        seconds = time.perf_counter() - start
        results[name] = {"epoch_s": round(seconds, 2), "samples_per_s": round(len(train) / seconds, 1)}
    results["speedup"] = round(results["re_encoding"]["epoch_s"] / results["frozen_cached"]["epoch_s"], 1)
    return results


def peak_memory_of_training() -> float:
    """Peak resident memory (GiB) of a full `train@fusion` run, in a child process."""
    cmd = [sys.executable, "-m", "stages.train", "--mode", "fusion", "--segments", "data/segments", "--tokens",
           "data/tokens", "--trp", "data/teacher/trp.parquet", "--embeddings", "data/embeddings", "--out",
           "/tmp/bench_fusion", "--checkpoints", "/tmp/bench_checkpoints", "--live", "/tmp/bench_live"]
    subprocess.run(cmd, check=True, capture_output=True)
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20  # KiB on Linux


def main() -> None:
    import tempfile

    from transformers.utils import logging as hf_logging

    from turnfusion.predict import TurnPredictor

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--model", default="models/fusion")
    args = parser.parse_args()
    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    predictors = {f"default model ({args.model})": (TurnPredictor(args.model), args.repeats),
                  "distil-size encoders (6x768 GPT-2, 2x768 HuBERT)":
                      (distil_size_predictor(Path(args.model), Path(tempfile.mkdtemp())), max(10, args.repeats // 5))}
    for name, (predictor, repeats) in predictors.items():
        for streaming in (False, True):
            p50, p95 = latency(predictor, repeats, rng, streaming)
            kind = "streaming (context encodings remembered)" if streaming else "cold (3 segments encoded)"
            print(f"latency {name}, {kind}: p50 {p50:.1f} ms, p95 {p95:.1f} ms per utterance (+2 context)")
    epochs = epoch_times(yaml.safe_load(Path("params.yaml").read_text()))
    print(f"epoch, frozen encoders from cache: {epochs['frozen_cached']['epoch_s']} s "
          f"({epochs['frozen_cached']['samples_per_s']} samples/s)")
    print(f"epoch, re-encoding with the same encoders: {epochs['re_encoding']['epoch_s']} s "
          f"({epochs['re_encoding']['samples_per_s']} samples/s); speed-up {epochs['speedup']}x")
    print(f"peak memory of train@fusion: {peak_memory_of_training():.2f} GiB")


if __name__ == "__main__":
    main()

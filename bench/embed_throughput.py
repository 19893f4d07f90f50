"""Throughput of the embed stage at distil size: GPT-2 6 x 768 and HuBERT 2 x 768 (512-channel front end) built from
config (the sizes of distilgpt2 / ntu-spml/distilhubert; weights do not change the cost), run by the embed stage's
own writers over synthetic utterances: 3 s segments (the default `segment.max_seconds`) and 64-token contexts.

    python bench/embed_throughput.py --n 300 --device auto
    torchrun --standalone --nproc_per_node 4 bench/embed_throughput.py --n 1200   # every process a share

Prints utterances/s (all processes together: the utterances over the slowest process's time) for the audio and
text caches, bytes per utterance and peak accelerator memory; the figures that
docs/scaling.md extrapolates to 210 h of MM-F2F.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from transformers import GPT2Config, GPT2Model, HubertConfig, HubertModel

from turnfusion.data.stores import PackedTokens, SegmentStore
from turnfusion.data.tokenize import write_packed
from turnfusion.threads import thread_count
from turnfusion.training.distributed import processes
from turnfusion.training.embed import write_audio_cache, write_text_cache


def synthetic_store(n: int, seconds: float, rate: int = 16000) -> SegmentStore:
    rng = np.random.default_rng(0)
    length = int(seconds * rate)
    t = np.arange(length) / rate
    audio = np.concatenate([(3000 * np.sin(2 * np.pi * (120 + 40 * rng.random()) * t) + rng.normal(0, 300, length))
                            .astype(np.int16) for _ in range(n)])
    index = pd.DataFrame({"sentence_id": [f"u{i}" for i in range(n)], "offset": np.arange(n) * length,
                          "n_samples": length, "sample_rate": rate})
    return SegmentStore(audio, index, rate, Path("synthetic"))  # no audio policy: only its waveforms are read


def synthetic_tokens(n: int, length: int, vocab: int, directory: Path) -> PackedTokens:
    rng = np.random.default_rng(0)
    write_packed(directory, pd.DataFrame({"sentence_id": [f"u{i}" for i in range(n)]}),
                 [rng.integers(0, vocab, length).tolist() for _ in range(n)])
    return PackedTokens(directory)


def timed(function, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    function()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=200, help="utterances")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"], help="bf16: autocast on CUDA")
    args = parser.parse_args()
    procs = processes(args.device)
    device = procs.device
    torch.manual_seed(0)
    text = GPT2Model(GPT2Config(vocab_size=50261, n_layer=6, n_embd=768, n_head=12)).to(device)
    audio = HubertModel(HubertConfig(hidden_size=768, num_hidden_layers=2, num_attention_heads=12,
                                     intermediate_size=3072, conv_dim=[512] * 7)).to(device)
    share = procs.share(args.n)
    store = synthetic_store(len(share), args.seconds)
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        tokens = synthetic_tokens(len(share), args.tokens, 50261, work / "tokens")
        warm = synthetic_store(8, args.seconds)
        write_audio_cache(audio, warm, work / "warm.npy", progress=False)  # CUDA kernels, allocator
        procs.barrier()
        audio_s = timed(lambda: write_audio_cache(audio, store, work / "audio.npy", progress=False,
                                                  precision=args.precision, workers=thread_count()), device)
        text_s = timed(lambda: write_text_cache(text, tokens, work / "text.npy", args.batch_size, progress=False,
                                                precision=args.precision), device)
        audio_bytes = (work / "audio.npy").stat().st_size / max(1, len(share))
        text_bytes = (work / "text.npy").stat().st_size / max(1, len(share))
    audio_s, text_s = (max(procs.gather(t)) for t in (audio_s, text_s))  # the slowest process sets the pace
    if not procs.main:
        return
    report = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "processes": procs.world, "threads": torch.get_num_threads(),
              "audio_processes": thread_count() if device.type == "cpu" else 1, "precision": args.precision,
              "utterances": args.n, "segment_s": args.seconds, "context_tokens": args.tokens,
              "audio_utt_per_s": round(args.n / audio_s, 1), "text_utt_per_s": round(args.n / text_s, 1),
              "both_utt_per_s": round(args.n / (audio_s + text_s), 1),
              "audio_cache_kb_per_utt": round(audio_bytes / 1024, 1),
              "text_cache_kb_per_utt": round(text_bytes / 1024, 1),
              "peak_gpu_mb": round(torch.cuda.max_memory_allocated(device) / 2**20) if device.type == "cuda" else None}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

"""Benchmarks that print figures (no pass/fail): run after `make repro`.

    python bench/benchmark.py [--repeats 50]

1. Inference latency per utterance (current + two context utterances, 3 s of audio each), p50 / p95, on
   CPU with 2 threads, side by side in one run: PyTorch, ONNX fp32 and ONNX int8 (stage `export`), cold
   (every segment the model takes encoded) and streaming (the context segments' encodings remembered), for the default
   trained model and for distil-size encoders built from config (DistilGPT2: 6 layers x 768; DistilHuBERT:
   2 layers x 768 with the standard 512-channel front end), each also with its int8 audio path quantised
   statically (calibrated on train segments, `export.calibration_segments`); and Smart Turn v3.2 (pipecat-ai's
   ONNX model, fetched with `pip download --no-deps pipecat-ai==1.14.0` into bench/.cache) on the 8 s input it takes.
   The distil-size model once more with a layer-norm audio front end (each frame from its own samples), whose
   export a live session runs in pieces while the user speaks (`latency_in_pieces`): its cost at the end of speech,
   and the pieces' total. Sizes on disk in the same table.
2. Training: epoch time with frozen encoders (cached embeddings) vs. re-encoding every epoch with the
   same encoders, their ratio, samples/s, and the peak memory of a `train@fusion` run.
"""

import argparse
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

# two context utterances and the current one, as in a conversation
TEXTS = ["i went to the market yesterday and", "you know it was really nice", "did you ever go to the museum"]


def latency(predictor, repeats: int, rng, streaming: bool) -> tuple[float, float]:
    """Per-utterance latency with two context utterances of 3 s audio each, of a TurnPredictor or an OnnxTurnModel.

    streaming=False: every segment is new (cold). streaming=True: a live conversation, where the
    two context utterances were the current ones of the previous calls (their encodings are remembered).
    """
    rate = predictor.processor.config.sample_rate
    times = []
    waves = [rng.normal(0, 0.1, 3 * rate).astype(np.float32) for _ in range(2)]
    for k in range(repeats + 3):
        waves.append(rng.normal(0, 0.1, 3 * rate).astype(np.float32))
        if not streaming:
            predictor.audio_memory.clear()
        context = [{"text": TEXTS[j], "speaker": 0, "audio": waves[-3 + j], "sample_rate": rate} for j in range(2)]
        start = time.perf_counter()
        predictor.predict(TEXTS[2], waves[-1], 1, context, sample_rate=rate)
        if k >= 3:  # warm-up
            times.append(time.perf_counter() - start)
    return 1000 * float(np.percentile(times, 50)), 1000 * float(np.percentile(times, 95))


def latency_in_pieces(model, repeats: int, rng, piece_s: float = 0.2) -> dict:
    """A live session's cost with the audio front end run in pieces while the user speaks (an export whose front end
    is local: `OnnxTurnModel.front_end`): the current utterance's 3 s arrive in `piece_s` pieces, each run through
    the front end as it comes (`IncrementalAudio.extend`, as `StreamingTurnSession` does); at the end of speech the
    frames not yet computed, the rest of the audio path, the text and the head run. Context encodings remembered,
    as in `latency(streaming=True)`. Returns the end-of-speech p50 / p95 ms and the pieces' total p50 ms."""
    from turnfusion.serving.onnx_backend import IncrementalAudio

    rate = model.processor.config.sample_rate
    waves = [rng.normal(0, 0.1, 3 * rate).astype(np.float32) for _ in range(2)]
    pieces, at_end, spoken = IncrementalAudio(model), [], []
    for k in range(repeats + 3):
        waves.append(rng.normal(0, 0.1, 3 * rate).astype(np.float32))
        context = [{"text": TEXTS[j], "speaker": 0, "audio": waves[-3 + j], "sample_rate": rate} for j in range(2)]
        pieces.reset()
        start = time.perf_counter()
        for end in range(int(piece_s * rate), len(waves[-1]), int(piece_s * rate)):
            pieces.extend(waves[-1][:end])
        during = time.perf_counter() - start
        start = time.perf_counter()
        model.audio_memory.remember(waves[-1], pieces.vector(waves[-1]))
        model.predict(TEXTS[2], waves[-1], 1, context, sample_rate=rate)
        if k >= 3:  # warm-up
            at_end.append(time.perf_counter() - start)
            spoken.append(during)
    return {"at_end": [1000 * float(np.percentile(at_end, q)) for q in (50, 95)],
            "pieces": 1000 * float(np.percentile(spoken, 50))}


def smart_turn(repeats: int, rng, threads: int) -> tuple[tuple[float, float], float]:
    """(p50, p95) ms of Smart Turn v3.2 on 8 s of audio (its Whisper features included), and its size in MB."""
    import importlib.util
    import zipfile

    import onnxruntime as ort

    cache = Path(__file__).parent / ".cache"
    folder = "pipecat/audio/turn/smart_turn"
    model, features = cache / folder / "data/smart-turn-v3.2-cpu.onnx", cache / folder / "_whisper_features.py"
    if not model.exists():
        cache.mkdir(exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "pipecat-ai==1.14.0", "-d",
                        str(cache)], check=True)
        with zipfile.ZipFile(next(cache.glob("pipecat_ai-1.14.0-*.whl"))) as wheel:
            wheel.extractall(cache, [f"{folder}/data/smart-turn-v3.2-cpu.onnx", f"{folder}/_whisper_features.py"])
    spec = importlib.util.spec_from_file_location("whisper_features", features)
    whisper = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(whisper)
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    times = []
    for k in range(repeats + 3):
        audio = rng.normal(0, 0.1, 8 * 16000).astype(np.float32)
        start = time.perf_counter()
        features_ = whisper.compute_whisper_log_mel_features(audio, do_normalize=True)[None]
        session.run(None, {"input_features": features_.astype(np.float32)})
        if k >= 3:
            times.append(time.perf_counter() - start)
    return ((1000 * float(np.percentile(times, 50)), 1000 * float(np.percentile(times, 95))),
            model.stat().st_size / 2**20)


def directory_mb(path: Path, files=None) -> float:
    return sum(p.stat().st_size for p in (files or Path(path).rglob("*")) if p.is_file()) / 2**20


def save_distil_size_model(model_dir: Path, tmp: Path, front_end_norm: str = "group") -> None:
    """A model of distil size (random weights: they do not change the cost) with `model_dir`'s tokenizer, head
    knobs and processor; `front_end_norm` layer: a local front end (each frame from its own samples), which a live
    session runs in pieces while the user speaks."""
    from transformers import AutoTokenizer

    from turnfusion.models import TurnFusionConfig, TurnFusionModel
    from turnfusion.serving.processing import PROCESSOR_FILE

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    default = TurnFusionConfig.from_pretrained(str(model_dir))
    config = TurnFusionConfig.from_params(
        "fusion", default, text_config={"vocab_size": len(tokenizer), "n_layer": 6, "n_embd": 768, "n_head": 12,
                                        "n_positions": 1024},
        audio_config={"hidden_size": 768, "num_hidden_layers": 2, "num_attention_heads": 12,
                      "intermediate_size": 3072, "apply_spec_augment": False, "feat_extract_norm": front_end_norm})
    TurnFusionModel(config).save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    shutil.copy(Path(model_dir) / PROCESSOR_FILE, tmp)


def epoch_times(params: dict) -> dict:
    """One epoch of train@fusion from the cache vs. re-encoding the same inputs with the same encoders."""
    from dataclasses import replace

    from turnfusion.config import ModelConfig, TrainConfig, from_params
    from turnfusion.training.datasets import load_utterances
    from turnfusion.training.schedules import EncoderSchedule
    from turnfusion.training.train import build_model

    m, t = from_params(ModelConfig, params), from_params(TrainConfig, params)
    store, tokens, table = load_utterances("data/segments", "data/tokens", "data/teacher/trp.parquet",
                                           m.audio_segments)
    train = table[table.split == "train"]
    model = build_model("fusion", m, "data/embeddings", tokens.input_form())
    model.requires_grad_(False)
    model.head.requires_grad_(True)
    optimizer = torch.optim.AdamW(model.head.parameters(), lr=1e-3)
    results = {}
    for name, encoders in [("frozen_cached", "frozen"), ("re_encoding", "gradual")]:
        cfg = replace(t, batch_size=32, encoders=encoders)
        inputs = EncoderSchedule.of(cfg).inputs
        dataset = inputs.examples(train, "data/embeddings", tokens, store, model)
        start = time.perf_counter()
        loader = torch.utils.data.DataLoader(dataset, batch_size=cfg.batch_size, shuffle=True,
                                             collate_fn=inputs.collate, generator=torch.Generator().manual_seed(0))
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


def predictor_for(model_dir: Path, onnx_dir: Path, backend: str, threads: int):
    """A TurnPredictor (backend "PyTorch") or an OnnxTurnModel ("ONNX fp32" / "ONNX int8"), and its size in MB."""
    if backend == "PyTorch":
        from turnfusion.serving.predict import TurnPredictor

        return TurnPredictor(model_dir), directory_mb(model_dir)
    from turnfusion.serving.onnx_backend import OnnxTurnModel

    model = OnnxTurnModel(onnx_dir, backend.split()[-1], threads)
    return model, model.manifest["size_mb"][model.precision]


def one_row(args) -> None:
    """Measure one backend of one model in this process (so that no other runtime's threads are alive)."""
    import json

    torch.set_num_threads(args.threads)
    if args.row == "Smart Turn":
        (p50, p95), mb = smart_turn(args.repeats, np.random.default_rng(0), args.threads)
        print(json.dumps({"cold": [p50, p95], "mb": mb}))
        return
    predictor, mb = predictor_for(Path(args.model), Path(args.onnx), args.row, args.threads)
    rng = np.random.default_rng(0)
    cold, streaming = (latency(predictor, args.repeats, rng, s) for s in (False, True))
    in_pieces = latency_in_pieces(predictor, args.repeats, rng) if getattr(predictor, "front_end", None) else None
    print(json.dumps({"cold": cold, "streaming": streaming, "in_pieces": in_pieces, "mb": mb}))


def measured(model_dir: Path, onnx_dir: Path, backend: str, repeats: int, threads: int) -> dict:
    import json

    done = subprocess.run([sys.executable, __file__, "--row", backend, "--model", str(model_dir), "--onnx",
                           str(onnx_dir), "--repeats", str(repeats), "--threads", str(threads)],
                          check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    import tempfile

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--model", default="models/fusion")
    parser.add_argument("--onnx", default="models/fusion-onnx", help="its export (made there if absent)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-training", action="store_true", help="latency only")
    parser.add_argument("--row", help=argparse.SUPPRESS)  # one backend, in a child process
    args = parser.parse_args()
    if args.row:
        return one_row(args)
    torch.set_num_threads(args.threads)
    import platform

    print(f"torch {torch.__version__}, {args.threads} threads, CPU: {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores")
    tmp = Path(tempfile.mkdtemp())
    save_distil_size_model(Path(args.model), tmp / "distil")
    save_distil_size_model(Path(args.model), tmp / "distil-local", "layer")
    from turnfusion.config import ExportConfig, from_params
    from turnfusion.serving.export import calibration_waveforms

    export_cfg = from_params(ExportConfig, yaml.safe_load(Path("params.yaml").read_text()))
    static = max(export_cfg.calibration_segments, 64)
    all_backends = ("PyTorch", "ONNX fp32", "ONNX int8")  # each in its own process
    distil = "distil-size encoders (6x768 GPT-2, 2x768 HuBERT)"
    # (model, export, its calibration segments (0: dynamic int8 audio), backends, repeats)
    rows = {f"default model ({args.model})": (Path(args.model), Path(args.onnx), export_cfg.calibration_segments,
                                              all_backends, args.repeats),
            f"default model, int8 audio static ({static} segments)": (Path(args.model), tmp / "default-static",
                                                                     static, ("ONNX int8",), args.repeats),
            distil: (tmp / "distil", tmp / "distil-onnx", export_cfg.calibration_segments, all_backends,
                     max(10, args.repeats // 5)),
            f"{distil}, int8 audio static": (tmp / "distil", tmp / "distil-static", static, ("ONNX int8",),
                                             max(10, args.repeats // 5)),
            f"{distil}, layer-norm front end, int8 audio static": (
                tmp / "distil-local", tmp / "distil-local-static", static, ("ONNX int8",), max(10, args.repeats // 5))}
    print("| model | backend | cold p50 / p95 ms | streaming p50 / p95 ms | front end in 0.2 s pieces while spoken: "
          "at end of speech p50 / p95 ms (pieces' total p50) | size MB |")
    print("|---|---|---|---|---|---|")
    for name, (model_dir, onnx_dir, calibration, backends, repeats) in rows.items():
        if not (onnx_dir / "manifest.json").exists():  # exported as the stage does
            from dataclasses import replace

            from turnfusion.serving.export import export

            waves = calibration_waveforms("data/segments", replace(export_cfg, calibration_segments=calibration))
            export(model_dir, onnx_dir, waves or None)
        for backend in backends:
            row = measured(model_dir, onnx_dir, backend, repeats, args.threads)
            (c50, c95), (s50, s95), pieces = row["cold"], row["streaming"], row["in_pieces"]
            in_pieces = (f"{pieces['at_end'][0]:.1f} / {pieces['at_end'][1]:.1f} ({pieces['pieces']:.1f})" if pieces
                         else "")
            print(f"| {name} | {backend} | {c50:.1f} / {c95:.1f} | {s50:.1f} / {s95:.1f} | {in_pieces} | "
                  f"{row['mb']:.1f} |", flush=True)
    row = measured(Path(args.model), Path(args.onnx), "Smart Turn", args.repeats, args.threads)
    print(f"| Smart Turn v3.2 (8 s of audio, no text) | ONNX (as shipped) | {row['cold'][0]:.1f} / "
          f"{row['cold'][1]:.1f} | | | {row['mb']:.1f} |")
    if args.skip_training:
        return
    epochs = epoch_times(yaml.safe_load(Path("params.yaml").read_text()))
    print(f"epoch, frozen encoders from cache: {epochs['frozen_cached']['epoch_s']} s "
          f"({epochs['frozen_cached']['samples_per_s']} samples/s)")
    print(f"epoch, re-encoding with the same encoders: {epochs['re_encoding']['epoch_s']} s "
          f"({epochs['re_encoding']['samples_per_s']} samples/s); speed-up {epochs['speedup']}x")
    print(f"peak memory of train@fusion: {peak_memory_of_training():.2f} GiB")


if __name__ == "__main__":
    main()

"""The streaming session's cost (figures only): decision latency after the last chunk, CPU time per second of
streamed audio (real-time factor) and memory over a long stream, on an exported model; with `--distil` also a
model of distil size (DistilGPT2 6 x 768 text, DistilHuBERT-size audio: random weights, the same cost) exported
int8 as the stage does, and Smart Turn v3.2 (pipecat-ai 1.14's ONNX: it runs once at each end of speech, on 8 s)
on the same utterances, side by side in one run.

    python bench/streaming.py --model models/fusion-onnx [--minutes 60] [--rate 16000] [--threads 2] [--distil]

The stream: eSpeak NG utterances (16 sentences in turn) with 0.6 s of silence after each, in 20 ms chunks; each
utterance's words are given as final when its last chunk is sent (before the silence that ends it). Decision
latency = wall time of the `push_audio` call that returned the decision (its VAD frames, the text encoder and the
head; the audio was encoded when the speech ended).
"""

import argparse
import importlib.util
import resource
import time
from pathlib import Path

import numpy as np
import soxr

from turnfusion.data.sources import speech
from turnfusion.live.streaming import StreamingTurnSession

SENTENCES = ["so we went to the market yesterday", "did you like it", "it was nice you know",
             "and then we saw the museum", "i think so", "what did you eat there", "mostly fish and bread",
             "that sounds lovely", "yeah", "we should go again next year", "maybe in the spring",
             "how long did it take", "about two hours by train", "right", "and the weather was fine",
             "good to hear"]


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def stream(session: StreamingTurnSession, clips: list, minutes: float, rate: int) -> dict:
    """Stream `clips` (text, int16 pcm, samples of speech) round and round for `minutes`; the figures."""
    chunk = rate // 50
    decisions, chunk_ms, busy, streamed, k = [], [], 0.0, 0, 0
    rss_start, started = rss_mb(), time.perf_counter()
    while streamed < minutes * 60 * rate:
        text, pcm, speech_end = clips[k % len(clips)]
        k += 1
        for start in range(0, len(pcm), chunk):
            if start <= speech_end < start + chunk:
                session.push_words(text, final=True)
            t0 = time.perf_counter()
            decision = session.push_audio(pcm[start: start + chunk])
            elapsed = time.perf_counter() - t0
            busy += elapsed
            (decisions if decision else chunk_ms).append(elapsed * 1000)
        streamed += len(pcm)
    return {"seconds": streamed / rate, "wall": time.perf_counter() - started, "decisions": decisions,
            "chunk_ms": chunk_ms, "rtf": busy / (streamed / rate), "rss": (rss_start, rss_mb()),
            "skipped": session.skipped_without_words}


def smart_turn_ms(clips: list, rate: int, threads: int) -> list[float]:
    """Smart Turn v3.2's inference per end of speech (its 8 s window and Whisper features included)."""
    from pipecat.audio.turn.smart_turn.local_smart_turn_v3 import LocalSmartTurnAnalyzerV3

    analyzer = LocalSmartTurnAnalyzerV3(cpu_count=threads)
    analyzer.set_sample_rate(rate)
    times = []
    for k in range(3 * len(clips)):
        _, pcm, speech_end = clips[k % len(clips)]
        wave = pcm[: speech_end + int(0.2 * rate)].astype(np.float32) / 32768
        t0 = time.perf_counter()
        analyzer._predict_endpoint(wave)
        times.append((time.perf_counter() - t0) * 1000)
    return times[len(clips):]  # after a warm-up round


def distil_export(model_dir: str, rate: int) -> Path:
    """A distil-size model (bench/benchmark.py's) exported with dynamic int8, in a temporary folder."""
    import importlib.util
    import tempfile

    from turnfusion.serving.export import export

    spec = importlib.util.spec_from_file_location("benchmark", Path(__file__).parent / "benchmark.py")
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    tmp = Path(tempfile.mkdtemp())
    benchmark.save_distil_size_model(Path(model_dir), tmp / "distil")
    export(tmp / "distil", tmp / "distil-onnx")
    return tmp / "distil-onnx"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models/fusion-onnx")
    parser.add_argument("--torch-model", default="models/fusion", help="its PyTorch folder (for --distil's tokenizer)")
    parser.add_argument("--precision", default="int8")
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--rate", type=int, default=16000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--distil", action="store_true")
    args = parser.parse_args()
    clips = []
    for k, text in enumerate(SENTENCES):
        voice = speech.Voice("en-us+m3" if k % 2 else "en-us+f3", 50, 170)
        clip = soxr.resample(speech.speak(text, voice), speech.sample_rate(), args.rate)
        pcm = np.clip(np.round(np.concatenate([clip, np.zeros(int(0.6 * args.rate))]) * 32767), -32768, 32767)
        clips.append((text, pcm.astype(np.int16), len(clip)))
    models = {f"default ({args.model})": Path(args.model)}
    if args.distil:
        models["distil size (6 x 768 text, 2 x 768 audio)"] = distil_export(args.torch_model, args.rate)
    p = lambda xs, q: float(np.percentile(xs, q))  # noqa: E731
    print(f"{args.precision}, {args.threads} threads, {args.rate} Hz in 20 ms chunks, {args.minutes} min of "
          f"speech and 0.6 s pauses per model")
    print("| model | decision latency after the last chunk p50 / p95 ms | any other chunk p50 / p95 ms | "
          "real-time factor | peak RSS before / after MB |\n|---|---|---|---|---|")
    for name, directory in models.items():
        session = StreamingTurnSession(directory, args.rate, precision=args.precision, threads=args.threads)
        r = stream(session, clips, args.minutes, args.rate)
        print(f"| {name} | {p(r['decisions'], 50):.2f} / {p(r['decisions'], 95):.2f} | "
              f"{p(r['chunk_ms'], 50):.3f} / {p(r['chunk_ms'], 95):.3f} | {r['rtf']:.4f} | "
              f"{r['rss'][0]:.0f} / {r['rss'][1]:.0f} |", flush=True)
        print(f"  ({r['seconds'] / 60:.1f} min in {r['wall']:.1f} s, {len(r['decisions'])} decisions, "
              f"{r['skipped']} utterances without one)", flush=True)
    if importlib.util.find_spec("pipecat") is not None:
        times = smart_turn_ms(clips, args.rate, args.threads)
        print(f"| Smart Turn v3.2 (runs at each end of speech) | {p(times, 50):.2f} / {p(times, 95):.2f} | "
              "(VAD only) | | |")


if __name__ == "__main__":
    main()

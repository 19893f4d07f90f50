"""The streaming session's cost (figures only): decision latency after the last chunk, CPU time per second of
streamed audio (real-time factor) and memory over a long stream, on an exported model.

    python bench/streaming.py --model models/fusion-onnx [--minutes 60] [--rate 16000] [--threads 2]

The stream: eSpeak NG utterances (16 sentences in turn) with 0.6 s of silence after each, in 20 ms chunks; each
utterance's words are given as final when its last chunk is sent (before the silence that ends it). Decision
latency = wall time of the `push_audio` call that returned the decision (its VAD frames, the text encoder and the
head; the audio was encoded when the speech ended).
"""

import argparse
import resource
import time

import numpy as np
import soxr

from turnfusion.sources import speech
from turnfusion.streaming import StreamingTurnSession

SENTENCES = ["so we went to the market yesterday", "did you like it", "it was nice you know",
             "and then we saw the museum", "i think so", "what did you eat there", "mostly fish and bread",
             "that sounds lovely", "yeah", "we should go again next year", "maybe in the spring",
             "how long did it take", "about two hours by train", "right", "and the weather was fine",
             "good to hear"]


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models/fusion-onnx")
    parser.add_argument("--precision", default="int8")
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--rate", type=int, default=16000)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    session = StreamingTurnSession(args.model, args.rate, precision=args.precision, threads=args.threads)
    chunk = args.rate // 50
    clips = []
    for k, text in enumerate(SENTENCES):
        voice = speech.Voice("en-us+m3" if k % 2 else "en-us+f3", 50, 170)
        clip = soxr.resample(speech.speak(text, voice), speech.sample_rate(), args.rate)
        pcm = np.clip(np.round(np.concatenate([clip, np.zeros(int(0.6 * args.rate))]) * 32767), -32768, 32767)
        clips.append((text, pcm.astype(np.int16), len(clip)))
    decisions, chunk_ms, busy, streamed = [], [], 0.0, 0
    rss_start, started, k = rss_mb(), time.perf_counter(), 0
    while streamed < args.minutes * 60 * args.rate:
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
    wall = time.perf_counter() - started
    seconds = streamed / args.rate
    p = lambda xs, q: float(np.percentile(xs, q))  # noqa: E731
    print(f"{args.model} ({args.precision}, {args.threads} threads), {args.rate} Hz in 20 ms chunks: "
          f"{seconds / 60:.1f} min streamed in {wall:.1f} s, {len(decisions)} decisions, "
          f"{session.skipped_without_words} utterances without a decision")
    print("| | p50 | p95 |\n|---|---|---|")
    print(f"| decision latency after the last chunk (ms) | {p(decisions, 50):.2f} | {p(decisions, 95):.2f} |")
    print(f"| any other chunk (ms) | {p(chunk_ms, 50):.3f} | {p(chunk_ms, 95):.3f} |")
    print(f"real-time factor (processing time / audio time): {busy / seconds:.4f}; "
          f"peak RSS {rss_start:.0f} MB before streaming, {rss_mb():.0f} MB after")


if __name__ == "__main__":
    main()

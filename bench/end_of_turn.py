"""End-of-turn detection in the field's terms (figures only), after `dvc repro`: turnfusion against Smart Turn
v3.2 (the ONNX model inside the pipecat-ai 1.14 wheel, `pip install -e '.[pipecat]'`) and a silence timeout, on the
test split of the pipeline's data (the demo corpus, or the MM-F2F rehearsal run in its own workspace).

    python bench/end_of_turn.py [--predictions reports/evaluate/predictions.parquet] [--model fusion]

The metrics are LiveKit eot-bench's (Apache-2.0; `eot_harness/metrics.py`): every silence after an utterance
is a span; after a shift it is the end of the turn (`eot`), after keep or backchannel a pause (`hold`, kept
when 0.2-5 s long; the speaker's next utterance ends it). A model gives one P(end of turn) per span, at 0.2 s of
silence. An agent policy acts when P > threshold and at least `delay` of silence has passed, and anyway after
`timeout`; a pause is cut off when the agent acts before it ends. Every (threshold 0..1 by 0.01, delay 0.2..1 s
by 0.1, timeout 1..3.5 s by 0.5) is tried:
- cut-off rate @ 300 / 600 ms: the lowest share of cut-off pauses among policies whose mean latency (silence
  waited at ends of turns; the timeout where the model never fires) is at most 300 / 600 ms;
- latency @ 5 / 10 %: the lowest mean latency among policies that cut off at most 5 / 10 % of pauses.
The silence timeout acts after d seconds of silence (0.2..5 s by 0.01).

turnfusion's P(end of turn) is its P(shift) for the utterance (text, audio and context as `evaluate` gave them);
Smart Turn reads the speaker's last 8 s of audio up to 0.2 s after the utterance's end (its own channel). On
synthetic speech the timing and the words are the corpus generator's, not people's: the table compares the
detectors on the same input, it does not say how either does on real calls.
"""

import argparse
import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd

from turnfusion.audio import read_resampled, recording_path, select_channel
from turnfusion.schema import SHIFT, conversation_order

RATE = 16000
SCORE_AT_S = 0.2
THRESHOLDS = np.round(np.arange(0, 1.0001, 0.01), 2)
DELAYS = np.round(np.arange(0.2, 1.0001, 0.1), 1)
TIMEOUTS = np.round(np.arange(1.0, 3.5001, 0.5), 1)


def spans(table: pd.DataFrame) -> pd.DataFrame:
    """One row per utterance of `table` with its span: kind `eot` (after a shift) or `hold` (after keep /
    backchannel: the silence until the speaker's next utterance starts, kept when 0.2-5 s)."""
    rows = []
    for _, conv in conversation_order(table).groupby("video_id", sort=True):
        conv = conv.reset_index(drop=True)
        for i, row in conv.iterrows():
            if row.label == SHIFT:
                rows.append({**row, "kind": "eot", "pause": np.nan})
                continue
            later = conv[(conv.index > i) & (conv.speaker == row.speaker) & (conv.start >= row.end)]
            if later.empty:
                continue
            pause = float(later.start.iloc[0] - row.end)
            if 0.2 <= pause <= 5.0:
                rows.append({**row, "kind": "hold", "pause": pause})
    return pd.DataFrame(rows)


def policy_grid(p_eot: np.ndarray, kind: np.ndarray, pause: np.ndarray) -> pd.DataFrame:
    """Cut-off rate and mean end-of-turn latency of every (threshold, delay, timeout), scores at SCORE_AT_S."""
    eot, hold = kind == "eot", kind == "hold"
    rows = []
    for threshold in THRESHOLDS:
        fires = p_eot > threshold
        for delay in DELAYS:
            act = max(delay, SCORE_AT_S)
            for timeout in TIMEOUTS:
                cut = (fires[hold] & (pause[hold] > act)) | (pause[hold] > timeout)
                latency = np.where(fires[eot] & (act <= timeout), act, timeout)
                rows.append((threshold, delay, timeout, cut.mean(), latency.mean()))
    return pd.DataFrame(rows, columns=["threshold", "delay", "timeout", "cutoff", "latency"])


def silence_timeout(pause: np.ndarray) -> pd.DataFrame:
    d = np.round(np.arange(0.2, 5.0001, 0.01), 2)
    return pd.DataFrame({"cutoff": [(pause > x).mean() for x in d], "latency": d})


def summary(grid: pd.DataFrame) -> dict:
    def best(column, where):
        chosen = grid[where]
        return float(chosen[column].min()) if len(chosen) else float("nan")

    return {"cutoff@300ms": best("cutoff", grid.latency <= 0.3 + 1e-9),
            "cutoff@600ms": best("cutoff", grid.latency <= 0.6 + 1e-9),
            "latency@5%": best("latency", grid.cutoff <= 0.05 + 1e-9),
            "latency@10%": best("latency", grid.cutoff <= 0.10 + 1e-9)}


def smart_turn_probabilities(rows: pd.DataFrame, audio_dir: Path) -> np.ndarray:
    """Smart Turn v3.2's P(complete) for each row: its speaker's audio, the last 8 s up to SCORE_AT_S after the
    utterance's end."""
    if importlib.util.find_spec("pipecat") is None:
        raise SystemExit("Smart Turn comes with pipecat: pip install -e '.[pipecat]'")
    from pipecat.audio.turn.smart_turn.local_smart_turn_v3 import LocalSmartTurnAnalyzerV3

    analyzer = LocalSmartTurnAnalyzerV3(cpu_count=2)
    analyzer.set_sample_rate(RATE)
    out = np.zeros(len(rows))
    for video_id, part in rows.groupby("video_id", sort=False):
        recording = read_resampled(recording_path(audio_dir, video_id), RATE)
        for k, row in part.iterrows():
            end = int(round((row.end + SCORE_AT_S) * RATE))
            cut = recording[max(0, end - 8 * RATE): end]
            wave = select_channel(cut, int(row.speaker) if recording.shape[1] > 1 else None)
            out[rows.index.get_loc(k)] = analyzer._predict_endpoint(np.ascontiguousarray(wave, np.float32))[
                "probability"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--predictions", default="reports/evaluate/predictions.parquet")
    parser.add_argument("--segments", default="data/segments/segments.parquet")
    parser.add_argument("--audio", default="data/raw")
    parser.add_argument("--models", default="fusion,text,audio")
    parser.add_argument("--no-smart-turn", action="store_true")
    args = parser.parse_args()
    segments = pd.read_parquet(args.segments)
    test = segments[segments.split == "test"]
    clips = "audio_start" in test.columns
    if clips:
        print("the rows' audio lies in clips of their own (the MM-F2F rehearsal): the spans come from the annotated "
              "times, and Smart Turn, which needs the silence after an utterance in the recording, is left out")
    table = spans(test)
    predictions = pd.read_parquet(args.predictions).set_index(["model", "sentence_id"])
    kind, pause = table.kind.to_numpy(), table.pause.to_numpy()
    print(f"{args.predictions}: {(kind == 'eot').sum()} ends of turn, {(kind == 'hold').sum()} pauses of 0.2-5 s "
          f"(median {np.nanmedian(pause):.2f} s) in {table.video_id.nunique()} test conversations")
    results = {}
    for model in args.models.split(","):
        p = predictions.loc[model].loc[table.sentence_id, "p_shift"].to_numpy()
        results[f"turnfusion {model} (P(shift))"] = summary(policy_grid(p, kind, pause))
    if not args.no_smart_turn and not clips:
        results["Smart Turn v3.2 (audio only)"] = summary(policy_grid(smart_turn_probabilities(
            table, Path(args.audio)), kind, pause))
    results["silence timeout"] = summary(silence_timeout(pause[kind == "hold"]))
    print("| detector | cut-offs @ 300 ms | cut-offs @ 600 ms | latency @ 5 % | latency @ 10 % |")
    print("|---|---|---|---|---|")
    def ms(seconds: float) -> str:
        return "none within the timeouts" if np.isnan(seconds) else f"{1000 * seconds:.0f} ms"

    for name, r in results.items():
        print(f"| {name} | {100 * r['cutoff@300ms']:.1f} % | {100 * r['cutoff@600ms']:.1f} % | "
              f"{ms(r['latency@5%'])} | {ms(r['latency@10%'])} |")


if __name__ == "__main__":
    main()

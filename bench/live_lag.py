"""The live path under a lagging speech recogniser (figures only), after `dvc repro`: the test split's stereo
conversations replayed in real-time order through `StreamingTurnSession` (20 ms chunks of one speaker's channel as
the user; the other speaker is the agent, whose words join the context when it finishes), with a simulated
recogniser whose partials come every 0.2 s and lag the speech by L, and whose final (with its times) comes
L + 0.05 s after the speech ends; beside Smart Turn v3.2 and silence timeouts on the same utterances.

    python bench/live_lag.py [--model models/fusion-onnx] [--lags 0,0.1,0.3,0.5] [--limit N] [--no-smart-turn]

Each conversation is replayed twice, each speaker once the user. Word times are not in the table: an utterance's
words are spread over its [start, end] by their length. The agent's policy: it takes the turn at the first decision
(or revision) that says shift, else after `--timeout` (3 s, pipecat's default `stop_secs` of Smart Turn) of silence;
a user who speaks again first keeps the turn. Per L:
- end-of-turn latency p50 / p95 from the true end of speech, over utterances labelled shift (the timeout where no
  shift was decided);
- timeouts: shift utterances whose turn ended by the timeout (missed);
- words missing: turns handed on by a decision whose words do not end with all of the utterance's;
- cut-offs: keep / backchannel utterances where the agent took the turn before the user spoke again;
- macro F1 of each utterance's last decision against its label (utterances the VAD merged or missed: undecided).
Smart Turn v3.2 (pipecat-ai 1.14's ONNX; audio only, so the same at every L) decides at 0.2 s after the true end of
speech on the user's last 8 s: complete takes the turn, incomplete waits for the timeout. A silence timeout takes the
turn after T of silence. The pipecat analyzer's rows replay the same through `TurnFusionTurnAnalyzer` as pipecat
drives it (`replay_pipecat`); its end of turn is pipecat's user turn stop. Backchannel interruptions are not measured
here: the table has no rows (nor words) for the listener's backchannels; the pipecat tests and
`examples/pipecat_pipeline.py` check that a backchannel never stops the agent.
On synthetic speech the timing and words are the demo generator's: the table compares the live path across lags, not
how it does on real calls.
"""

import argparse
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score

from turnfusion.audio import read_resampled, recording_path
from turnfusion.live.streaming import StreamConfig, StreamingTurnSession
from turnfusion.schema import BACKCHANNEL, KEEP, SHIFT, conversation_order
from turnfusion.serving.onnx_backend import OnnxTurnModel
from turnfusion.text.words import normalize

RATE, CHUNK = 16000, 320  # 20 ms
PARTIAL_EVERY_S, FINAL_AFTER_S = 0.2, 0.05
MATCH_S = 0.35  # a decision belongs to the utterance whose true end is this close to its detected end
LABEL_OF = {"keep": KEEP, "shift": SHIFT, "backchannel": BACKCHANNEL}


@dataclass
class Outcome:
    """What the live path did at one user utterance."""
    label: int
    turn_end_s: float | None  # seconds after the true end when the agent took the turn (None: the user went on first)
    by_timeout: bool
    words_missing: bool
    decided: int | None  # the last decision's label (None: undecided)


def word_events(u, lag: float) -> list[tuple[float, str, bool, tuple | None]]:
    """(time, text, final, times) of the simulated recogniser for one utterance."""
    words = normalize(u.text).split()
    if not words:
        return []
    lengths = np.cumsum([len(w) + 1 for w in words])
    ends = u.start + (u.end - u.start) * lengths / lengths[-1]
    events, t, shown = [], u.start + PARTIAL_EVERY_S, ""
    while t < u.end + lag:
        heard = " ".join(w for w, e in zip(words, ends, strict=True) if e <= t - lag)
        if heard and heard != shown:
            events.append((t, heard, False, None))
            shown = heard
        t += PARTIAL_EVERY_S
    events.append((u.end + lag + FINAL_AFTER_S, " ".join(words), True, (float(u.start), float(u.end))))
    return events


def replay_events(conv: pd.DataFrame, user: int, lag: float) -> list[tuple[float, str, bool | None, tuple | None]]:
    """(time, text, final, times) of one replay in time order: the agent's utterances when it finishes each (final
    None) and the simulated recogniser's words of the user's (`word_events`)."""
    events = [(float(u.end), u.text, None, None) for u in conv[conv.speaker != user].itertuples()]
    for u in conv[conv.speaker == user].itertuples():
        events += word_events(u, lag)
    return sorted(events, key=lambda e: e[0])


def pcm16(wave: np.ndarray) -> np.ndarray:
    return np.clip(np.round(wave * 32767), -32768, 32767).astype(np.int16)


def replay(model: OnnxTurnModel, wave: np.ndarray, conv: pd.DataFrame, user: int, lag: float,
           config: StreamConfig) -> list:
    """Every decision of one replay (the session's, with the time it was given)."""
    session = StreamingTurnSession(model, RATE, config)
    events, pcm = replay_events(conv, user, lag), pcm16(wave)
    decisions, k = [], 0
    for start in range(0, len(pcm), CHUNK):
        now = (start + CHUNK) / RATE
        while k < len(events) and events[k][0] <= now:
            _, text, final, times = events[k]
            k += 1
            if final is None:
                session.bot_said(text)
                continue
            decision = session.push_words(text, final, *(times or (None, None)))
            if decision is not None:
                decisions.append(decision)
        decision = session.push_audio(pcm[start: start + CHUNK])
        if decision is not None:
            decisions.append(decision)
    return decisions


@dataclass
class TurnStop:
    """pipecat's user turn stop (the agent takes the turn), and the user's final words it had then."""
    decided_s: float
    speech_end_s: float  # the user's last true end of speech before it (for `outcomes`)
    text: str
    label: str = "shift"


def replay_pipecat(model: OnnxTurnModel, wave: np.ndarray, conv: pd.DataFrame, user: int, lag: float,
                   timeout: float, ttfs_p99: float = 1.0) -> list[TurnStop]:
    """One replay through `TurnFusionTurnAnalyzer` as pipecat 1.14 drives it (`TurnFusionUserTurnStopStrategy` over
    `TurnAnalyzerUserTurnStopStrategy`, written out here without the event loop, on the replay's clock): pipecat's
    Silero VAD (`VADParams()`: 0.2 s start and stop) on 20 ms frames; the analysis at the VAD's stop; the turn stops
    when the analysis said COMPLETE and a final transcript came (or the recogniser's p99 time to final passed with
    one: `ttfs_p99`, pipecat's default 1 s for a service that declares none); a final that changes the words of the
    analysis analyses again before pipecat acts on it (`TurnFusionUserTurnStopStrategy._revise`); the analyzer's
    `stop_secs` (`timeout`) of silence ends the turn; speech discards what was pending. Analyses run at once on the
    replay's clock (the model's compute is measured elsewhere: `bench/end_of_turn.py`), so no final lands inside an
    analysis; pipecat's aggregator handles frames in order, and a final that comes during one is read after it."""
    from pipecat.audio.vad.silero import SileroVADAnalyzer
    from pipecat.audio.vad.vad_analyzer import VADState

    from turnfusion.live.pipecat_turns import EndOfTurnState, TurnFusionParams, TurnFusionTurnAnalyzer

    vad = SileroVADAnalyzer(sample_rate=RATE)
    vad.set_sample_rate(RATE)  # what the input transport does at its start
    analyzer = TurnFusionTurnAnalyzer(model, sample_rate=RATE, params=TurnFusionParams(stop_secs=timeout))
    analyzer.set_sample_rate(RATE)
    events, pcm = replay_events(conv, user, lag), pcm16(wave)  # pipecat gives no word times
    ends = conv[conv.speaker == user].end.to_numpy()
    stops, k = [], 0
    speaking, stopped, complete, finalized, text, deadline = False, False, False, False, "", None

    def maybe_stop(now: float) -> None:
        nonlocal complete, finalized, text, stopped, deadline
        if complete and text and (finalized or deadline is None or now >= deadline):
            before = ends[ends <= now + 1e-9]
            stops.append(TurnStop(now, float(before[-1]) if len(before) else -np.inf, text))
            complete = finalized = stopped = False
            text, deadline = "", None
            analyzer.clear()

    def analysed(state) -> None:
        nonlocal complete
        complete = state == EndOfTurnState.COMPLETE

    for start in range(0, len(pcm), CHUNK):
        now = (start + CHUNK) / RATE
        while k < len(events) and events[k][0] <= now:
            _, words, final, _ = events[k]
            k += 1
            if final is None:
                analyzer.bot_said(words)
                continue
            analyzer.add_transcription(words, final)
            if final:
                text, finalized = (f"{text} {words}".strip() if text else words), True
            else:
                finalized = False
            if analyzer.revision_due and not speaking:  # before pipecat acts on the final (`_revise`)
                analysed(analyzer.decide_again()[0])
            if analyzer.waiting_for_words and stopped and not speaking:
                analysed(analyzer.decide()[0])
            maybe_stop(now)
        chunk = pcm[start: start + CHUNK]
        was_speaking = speaking
        state = vad._run_analyzer(chunk.tobytes())
        speaking = state == VADState.SPEAKING or (was_speaking and state == VADState.STOPPING)
        if speaking and not was_speaking:  # VADUserStartedSpeakingFrame
            analyzer.update_vad_start_secs(vad.params.start_secs)
            complete = finalized = stopped = False
            deadline = None
        if analyzer.append_audio(chunk.tobytes(), speaking) == EndOfTurnState.COMPLETE:  # stop_secs of silence
            analyzer.decide()
            complete = True
        if was_speaking and not speaking:  # VADUserStoppedSpeakingFrame
            stopped, deadline = True, now - vad.params.stop_secs + ttfs_p99
            analysed(analyzer.decide()[0])
        maybe_stop(now)  # a COMPLETE analysis with a final, or past pipecat's wait for one
    return stops


def ends_with(decided: str, said: str) -> bool:
    """Whether the words a decision read end with all of the utterance's (the VAD may have joined it to the one
    before: more words are not missing ones)."""
    decided_words, said_words = normalize(decided).split(), normalize(said).split()
    return decided_words[len(decided_words) - len(said_words):] == said_words


def outcomes(conv: pd.DataFrame, user: int, decisions: list, timeout: float) -> list[Outcome]:
    """The agent's policy at each of the user's utterances, from the session's decisions."""
    mine = conv[conv.speaker == user].reset_index(drop=True)
    ends = mine.end.to_numpy()
    owned = [[] for _ in range(len(mine))]
    for d in decisions:  # each decision to the utterance whose true end is nearest its detected end
        nearest = int(np.argmin(np.abs(ends - d.speech_end_s)))
        if abs(ends[nearest] - d.speech_end_s) <= MATCH_S:
            owned[nearest].append(d)
    result = []
    for i, u in mine.iterrows():
        own = owned[i]
        shifts = [d for d in own if d.label == "shift"]
        first_shift = shifts[0].decided_s - u.end if shifts else np.inf
        end = min(first_shift, timeout)
        # a hold is cut off when the agent acts before the user's next speech; after a shift the user waits
        resumes = mine.start.iloc[i + 1] - u.end if i + 1 < len(mine) and u.label != SHIFT else np.inf
        taken = end < resumes
        words_missing = bool(shifts) and first_shift <= timeout and taken and not ends_with(shifts[0].text, u.text)
        result.append(Outcome(int(u.label), float(end) if taken else None, taken and first_shift > timeout,
                              words_missing, LABEL_OF[own[-1].label] if own else None))
    return result


def summarise(rows: list[Outcome]) -> dict:
    shift = [r for r in rows if r.label == SHIFT]
    holds = [r for r in rows if r.label != SHIFT]
    latency = np.array([r.turn_end_s for r in shift if r.turn_end_s is not None])
    decided = [r for r in rows if r.decided is not None]
    return {"shifts": len(shift), "p50": np.median(latency) if len(latency) else np.nan,
            "p95": np.percentile(latency, 95) if len(latency) else np.nan,
            "timeouts": sum(r.by_timeout for r in shift), "words_missing": sum(r.words_missing for r in shift),
            "holds": len(holds), "cutoffs": sum(r.turn_end_s is not None for r in holds),
            "undecided": len(rows) - len(decided),
            "macro_f1": f1_score([r.label for r in decided], [r.decided for r in decided], average="macro",
                                 labels=[KEEP, SHIFT, BACKCHANNEL]) if decided else np.nan}


def fixed_policy(table: pd.DataFrame, act_after: np.ndarray, timeout: float) -> dict:
    """A policy that takes the turn `act_after` seconds after each utterance's true end (inf: never, the timeout
    then), scored like the live path (no words, no decisions of its own)."""
    rows = []
    for _, conv in table.groupby(["video_id", "speaker"], sort=False):
        conv = conv.reset_index(drop=True)
        for i, u in conv.iterrows():
            resumes = conv.start.iloc[i + 1] - u.end if i + 1 < len(conv) and u.label != SHIFT else np.inf
            end = min(act_after[u.row], timeout)
            taken = end < resumes
            rows.append(Outcome(int(u.label), float(end) if taken else None, taken and act_after[u.row] > timeout,
                                False, None))
    return summarise(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models/fusion-onnx")
    parser.add_argument("--segments", default="data/segments/segments.parquet")
    parser.add_argument("--audio", default="data/raw")
    parser.add_argument("--lags", default="0,0.1,0.3,0.5")
    parser.add_argument("--timeout", type=float, default=3.0)
    parser.add_argument("--limit", type=int, default=0, help="at most this many conversations (0: all)")
    parser.add_argument("--no-smart-turn", action="store_true")
    parser.add_argument("--no-pipecat", action="store_true", help="leave out the pipecat analyzer's replay")
    parser.add_argument("--ttfs-p99", type=float, default=1.0,
                        help="the recogniser's p99 time to final that pipecat waits for (its default: 1 s)")
    args = parser.parse_args()
    segments = pd.read_parquet(args.segments)
    test = conversation_order(segments[(segments.split == "test") & segments.stereo])
    videos = sorted(test.video_id.unique())[: args.limit or None]
    test = test[test.video_id.isin(videos)].reset_index(drop=True)
    if test.empty:
        sys.exit(f"{args.segments}: no stereo conversation in the test split (demo.stereo_fraction)")
    model, config = OnnxTurnModel(args.model), StreamConfig()
    waves = {v: read_resampled(recording_path(Path(args.audio), v), RATE) for v in videos}
    print(f"{len(videos)} stereo test conversations, {len(test)} utterances ({(test.label == SHIFT).sum()} shift), "
          f"each speaker once the user; timeout {args.timeout} s")
    print("| detector | L (s) | shifts | latency p50 | latency p95 | timeouts | words missing | cut-offs / holds | "
          "undecided | macro F1 |")
    print("|---|---|---|---|---|---|---|---|---|---|")

    def line(name: str, lag: str, s: dict) -> None:
        f1 = "" if np.isnan(s["macro_f1"]) else f"{s['macro_f1']:.3f}"
        print(f"| {name} | {lag} | {s['shifts']} | {1000 * s['p50']:.0f} ms | {1000 * s['p95']:.0f} ms | "
              f"{s['timeouts']} | {s['words_missing']} | {s['cutoffs']} / {s['holds']} | {s['undecided']} | {f1} |",
              flush=True)

    for lag in (float(x) for x in args.lags.split(",")):
        rows = []
        for video in videos:
            conv = test[test.video_id == video].reset_index(drop=True)
            for user in (0, 1):
                decisions = replay(model, waves[video][:, user], conv, user, lag, config)
                rows += outcomes(conv, user, decisions, args.timeout)
        line("turnfusion streaming", f"{lag:g}", summarise(rows))
        if not args.no_pipecat and importlib.util.find_spec("pipecat") is not None:
            rows = []
            for video in videos:
                conv = test[test.video_id == video].reset_index(drop=True)
                for user in (0, 1):
                    stops = replay_pipecat(model, waves[video][:, user], conv, user, lag, args.timeout,
                                          args.ttfs_p99)
                    rows += outcomes(conv, user, stops, args.timeout)
            line("turnfusion pipecat analyzer", f"{lag:g}", {**summarise(rows), "macro_f1": np.nan, "undecided": "-"})
    table = test.assign(row=np.arange(len(test)))
    for seconds in (0.5, 1.0):
        line(f"silence timeout {seconds:g} s", "-", fixed_policy(table, np.full(len(table), seconds), args.timeout))
    if not args.no_smart_turn and importlib.util.find_spec("pipecat") is not None:
        from end_of_turn import SCORE_AT_S, smart_turn_probabilities

        complete = smart_turn_probabilities(table, Path(args.audio)) > 0.5
        line("Smart Turn v3.2", "-", fixed_policy(table, np.where(complete, SCORE_AT_S, np.inf), args.timeout))


if __name__ == "__main__":
    main()

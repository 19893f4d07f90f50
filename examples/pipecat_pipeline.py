"""A whole pipecat voice-agent pipeline, offline: transport -> speech recogniser -> user turn (Silero VAD and the turn
strategies) -> LLM -> the agent's speech, with stand-ins for the network services, in real time. The recogniser's
partials come every 0.2 s and lag the speech by L; its final comes L + 0.05 s after the speech ends (pipecat lists
0.35 s as a recogniser's worst-case final lag). Four cases, each at every L, with turnfusion or Smart Turn v3.2:

    pip install -e '.[pipecat]'
    python examples/pipecat_pipeline.py [--model models/fusion-onnx] [--lags 0.1,0.3] [--detector both]
                                        [--onset-gate none | models/onset_gate]

For each case it prints when the user's turn ended (ms after the end of speech; "none": the agent never answered),
the words the LLM got, how many user turns opened, when the agent stopped talking over the user (ms after the
onset of the user's speech; "no": it went on), and the words and P(shift) of each of turnfusion's analyses. eSpeak
NG speaks the user's lines and the demo model was trained on synthetic speech: the figures show the wiring and the
timing, not how either detector does on real calls.
"""

import argparse
import asyncio
import time
from dataclasses import dataclass, field

import numpy as np
import soxr
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADParams
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    InputAudioRawFrame,
    InterimTranscriptionFrame,
    InterruptionFrame,
    LLMContextFrame,
    STTMetadataFrame,
    TranscriptionFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import LLMUserAggregator, LLMUserAggregatorParams
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.tests.utils import SleepFrame, run_test
from pipecat.turns.user_turn_strategies import UserTurnStrategies

from turnfusion.data.sources import speech
from turnfusion.live.pipecat_turns import (
    BackchannelUserTurnStartStrategy,
    TurnFusionTurnAnalyzer,
    TurnFusionUserTurnStopStrategy,
)
from turnfusion.text.words import normalize

RATE, CHUNK = 16000, 320  # 20 ms frames, as a WebRTC transport sends them
CASES = {  # name: (the user's lines with the silence before each, the agent's speech [start, end] or None)
    "question": ([(0.5, "what time does the museum open tomorrow")], None),
    "two parts": ([(0.5, "i was thinking that"), (1.0, "we could go to the beach on saturday")], None),
    "mm-hmm over the agent": ([(1.0, "mm-hmm")], (0.0, 4.0)),
    "wait, stop over the agent": ([(1.0, "wait, stop")], (0.0, 4.0)),
}


@dataclass
class Run:
    """What one pipeline run saw, on the audio clock (seconds of audio sent)."""
    now: float = 0.0
    contexts: list = field(default_factory=list)  # (time, the user's words the LLM got)
    interrupted_at: float | None = None
    decisions: list = field(default_factory=list)  # turnfusion's (words, P(shift)) at each analysis


class Recogniser(FrameProcessor):
    """A streaming speech recogniser stand-in: partials of the words spoken L seconds ago, every 0.2 s; the final
    L + 0.05 s after each line's speech ends."""

    def __init__(self, run: Run, lines: list, lag: float):
        super().__init__()
        self.run, self.events = run, []
        for start, end, text in lines:
            words = text.split()
            ends = start + (end - start) * np.cumsum([len(w) + 1 for w in words]) / sum(len(w) + 1 for w in words)
            t = start + 0.2
            while t < end + lag:
                heard = " ".join(w for w, e in zip(words, ends, strict=True) if e <= t - lag)
                if heard:
                    self.events.append((t, InterimTranscriptionFrame(text=heard, user_id="user", timestamp="")))
                t += 0.2
            self.events.append((end + lag + 0.05, TranscriptionFrame(text=text, user_id="user", timestamp="",
                                                                     finalized=True)))
        self.events.sort(key=lambda e: e[0])

    async def process_frame(self, frame, direction):
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame):
            self.run.now += len(frame.audio) / 2 / RATE
            while self.events and self.events[0][0] <= self.run.now:
                await self.push_frame(self.events.pop(0)[1])


class Agent(FrameProcessor):
    """The agent's speech stand-in (the TTS and the output transport): it speaks over [start, end] of the clock and
    stops when the user interrupts it."""

    def __init__(self, run: Run, speaking: tuple | None):
        super().__init__()
        self.run, self.speaking, self.talking = run, speaking, False

    async def process_frame(self, frame, direction):
        await super().process_frame(frame, direction)
        if isinstance(frame, InterruptionFrame) and self.talking:
            self.talking, self.run.interrupted_at = False, self.run.now
            await self.push_frame(BotStoppedSpeakingFrame())
        await self.push_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame) and self.speaking is not None:
            start, end = self.speaking
            if not self.talking and start <= self.run.now < end and self.run.interrupted_at is None:
                self.talking = True
                await self.push_frame(BotStartedSpeakingFrame())
            elif self.talking and self.run.now >= end:
                self.talking = False
                await self.push_frame(BotStoppedSpeakingFrame())


class LLM(FrameProcessor):
    """The LLM stand-in: notes when a user turn reaches it and with which words."""

    def __init__(self, run: Run):
        super().__init__()
        self.run = run

    async def process_frame(self, frame, direction):
        await super().process_frame(frame, direction)
        if isinstance(frame, LLMContextFrame):
            said = [m for m in frame.context.get_messages() if m.get("role") == "user"]
            self.run.contexts.append((self.run.now, said[-1]["content"] if said else ""))
        await self.push_frame(frame, direction)


def spoken(lines: list) -> tuple[np.ndarray, list]:
    """The user's audio (16 kHz int16) and each line's (start, end, text), with 3.5 s of silence at the end."""
    pieces, times, t = [], [], 0.0
    for silence, text in lines:
        clip = soxr.resample(speech.speak(text), speech.sample_rate(), RATE)
        voiced = np.flatnonzero(np.abs(clip) > 1e-3)
        clip = clip[voiced[0]: voiced[-1] + 1]
        pieces += [np.zeros(int(silence * RATE), np.float32), clip]
        times.append((t + silence, t + silence + len(clip) / RATE, text))
        t += silence + len(clip) / RATE
    wave = np.concatenate([*pieces, np.zeros(int(3.5 * RATE), np.float32)])
    return np.clip(np.round(wave * 32767), -32768, 32767).astype(np.int16), times


async def one_case(detector: str, model: str, lines: list, speaking, lag: float,
                   onset_gate: str | None = None) -> tuple[Run, list]:
    pcm, times = spoken(lines)
    run = Run()
    if detector == "turnfusion":
        analyzer = TurnFusionTurnAnalyzer(model, on_decision=lambda words, probabilities, state: run.decisions.append(
            (words, probabilities["shift"])))
        start = BackchannelUserTurnStartStrategy(analyzer=analyzer, onset_gate=onset_gate)
        strategies = UserTurnStrategies(start=[start],
                                        stop=[TurnFusionUserTurnStopStrategy(turn_analyzer=analyzer)])
    else:  # pipecat's defaults: VAD and transcription start the turn, Smart Turn v3.2 ends it
        strategies = UserTurnStrategies()
    user = LLMUserAggregator(LLMContext(), params=LLMUserAggregatorParams(
        user_turn_strategies=strategies, vad_analyzer=SileroVADAnalyzer(params=VADParams(stop_secs=0.2))))
    pipeline = Pipeline([Agent(run, speaking), Recogniser(run, times, lag), user, LLM(run)])
    # the recogniser's P99 time to final, past the VAD's stop_secs (pipecat then waits for the final, not a timer)
    frames = [STTMetadataFrame(service_name="stt", ttfs_p99_latency=lag + 0.25)]
    for k in range(0, len(pcm) - CHUNK + 1, CHUNK):  # in real time, as a transport receives it
        frames += [InputAudioRawFrame(audio=pcm[k: k + CHUNK].tobytes(), sample_rate=RATE, num_channels=1),
                   SleepFrame(CHUNK / RATE)]
    await run_test(pipeline, frames_to_send=frames, expected_down_frames=None)
    return run, times


def row(name: str, detector: str, lag: float, run: Run, times: list) -> str:
    end = times[-1][1]
    after = [(t, words) for t, words in run.contexts if t >= times[0][0]]
    ended = f"+{1000 * (after[0][0] - end):,.0f} ms" if after else "none"
    words = repr(after[0][1]) if after else ""
    if after and normalize(after[0][1]) != normalize(" ".join(text for _, _, text in times)):
        words += " (words missing)"
    stopped = "no" if run.interrupted_at is None else f"{1000 * (run.interrupted_at - times[0][0]):,.0f} ms"
    decided = "; ".join(f"{words!r} {p:.2f}" for words, p in run.decisions) or "-"
    return f"| {name} | {detector} | {lag:g} | {ended} | {words} | {len(after)} | {stopped} | {decided} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models/fusion-onnx", help="an exported turnfusion model")
    parser.add_argument("--lags", default="0.1,0.3")
    parser.add_argument("--detector", choices=["turnfusion", "smart-turn", "both"], default="both")
    parser.add_argument("--onset-gate", default="none",
                        help="the barge-in gate (stage onset_gate: models/onset_gate); none: words and the time gate")
    args = parser.parse_args()
    onset_gate = None if args.onset_gate == "none" else args.onset_gate
    detectors = ["turnfusion", "smart-turn"] if args.detector == "both" else [args.detector]
    print("| case | detector | L (s) | user turn ended | words the LLM got | user turns | agent stopped | "
          "turnfusion's analyses: words, P(shift) |")
    print("|---|---|---|---|---|---|---|---|")
    began = time.perf_counter()
    for name, (lines, speaking) in CASES.items():
        for detector in detectors:
            for lag in (float(x) for x in args.lags.split(",")):
                run, times = asyncio.run(one_case(detector, args.model, lines, speaking, lag, onset_gate))
                print(row(name, detector, lag, run, times), flush=True)
    print(f"({time.perf_counter() - began:.0f} s)")


if __name__ == "__main__":
    main()

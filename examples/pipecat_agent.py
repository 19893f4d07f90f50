"""turnfusion as a pipecat voice agent's turn taking: one scripted conversation through pipecat's own user
aggregator, turn controller and strategies, with the frames a transport and a speech recogniser would send.

    pip install -e '.[pipecat]'                    # pipecat-ai 1.14, Python >= 3.11
    python examples/pipecat_agent.py               # uses models/fusion-onnx from `make repro`

In a real agent the same two strategies go into the user aggregator of a transport -> STT -> aggregator -> LLM ->
TTS -> transport pipeline (`turnfusion.live.pipecat_turns`); here eSpeak NG speaks the user's lines, the transcripts
are given, and the log says what the agent's turn taking did. The demo model was trained on synthetic speech:
its decisions show the wiring, not real-world accuracy.
"""

import argparse
import asyncio
import time

import numpy as np
import soxr
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    InputAudioRawFrame,
    InterimTranscriptionFrame,
    STTMetadataFrame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import LLMUserAggregator, LLMUserAggregatorParams
from pipecat.tests.utils import SleepFrame, run_test
from pipecat.turns.user_turn_strategies import UserTurnStrategies

from turnfusion.data.sources import speech
from turnfusion.live.pipecat_turns import (
    BackchannelUserTurnStartStrategy,
    TurnFusionTurnAnalyzer,
    TurnFusionUserTurnStopStrategy,
)

RATE = 16000
BOT_LINE = "so how was your trip to lisbon"


def user_speech(text: str, interim: str):
    """What the transport and the speech recogniser send while the user says `text`: VAD start, 20 ms audio
    frames, an interim transcript, the VAD's stop, then the final transcript."""
    clip = soxr.resample(speech.speak(text, speech.Voice("en-us+f3", 60, 170)), speech.sample_rate(), RATE)
    pcm = np.clip(np.round(clip * 32767), -32768, 32767).astype(np.int16)
    audio = [InputAudioRawFrame(audio=pcm[k: k + 320].tobytes(), sample_rate=RATE, num_channels=1)
             for k in range(0, len(pcm) - 319, 320)]
    return [VADUserStartedSpeakingFrame(start_secs=0.2), *audio,
            InterimTranscriptionFrame(text=interim, user_id="user", timestamp=""), SleepFrame(0.05),
            VADUserStoppedSpeakingFrame(stop_secs=0.2), SleepFrame(0.05),
            TranscriptionFrame(text=text, user_id="user", timestamp="", finalized=True), SleepFrame(0.5)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models/fusion-onnx", help="an exported turnfusion model")
    args = parser.parse_args()
    began = time.perf_counter()

    def log(message: str) -> None:
        print(f"{time.perf_counter() - began:6.2f} s  {message}", flush=True)

    def on_decision(words, probabilities, state):
        probs = ", ".join(f"{k} {v:.2f}" for k, v in probabilities.items())
        log(f"turnfusion on {words!r}: {probs} -> {'turn complete' if state.name == 'COMPLETE' else 'wait'}")

    def on_started(aggregator, strategy, *rest):
        log(f"user turn started ({type(strategy).__name__}): the agent stops talking")

    def on_stopped(aggregator, strategy, *rest):
        log(f"user turn ended ({type(strategy).__name__ if strategy else 'session end'}): the agent answers")

    analyzer = TurnFusionTurnAnalyzer(args.model, on_decision=on_decision)
    start = BackchannelUserTurnStartStrategy(analyzer=analyzer)
    user = LLMUserAggregator(LLMContext(), params=LLMUserAggregatorParams(user_turn_strategies=UserTurnStrategies(
        start=[start], stop=[TurnFusionUserTurnStopStrategy(turn_analyzer=analyzer)])))
    user.add_event_handler("on_user_turn_started", on_started)
    user.add_event_handler("on_user_turn_stopped", on_stopped)
    log(f"agent: {BOT_LINE!r}")
    analyzer.bot_said(BOT_LINE)  # in an agent: from the assistant aggregator's on_assistant_turn_stopped
    script = [STTMetadataFrame(service_name="stt", ttfs_p99_latency=0.3), BotStartedSpeakingFrame(),
              *user_speech("mm-hmm", "mm"), BotStoppedSpeakingFrame(), SleepFrame(0.2),
              *user_speech("we walked a lot and ate well", "we walked a lot"),
              BotStartedSpeakingFrame(), SleepFrame(0.2),
              *user_speech("wait what do you mean", "wait what"), BotStoppedSpeakingFrame()]
    asyncio.run(run_test(user, frames_to_send=script, expected_down_frames=None))
    log(f"backchannels that let the agent go on: {start.backchannels}")


if __name__ == "__main__":
    main()

"""The LiveKit Agents turn detector, with LiveKit's own classes: its protocols, audio frames, events and session."""

import asyncio

import numpy as np
import pytest
import soxr

pytest.importorskip("livekit.agents")

from livekit import rtc  # noqa: E402
from livekit.agents.voice.turn import _StreamingTurnDetector, _StreamingTurnDetectorStream  # noqa: E402
from test_export import exported  # noqa: E402, F401  (the fixture)

from turnfusion.data.sources import speech  # noqa: E402
from turnfusion.errors import DataError  # noqa: E402
from turnfusion.live.livekit_turns import TurnFusionTurnDetector  # noqa: E402
from turnfusion.live.streaming import StreamConfig, StreamingTurnSession  # noqa: E402

RATE = 48000
FRAME = RATE // 100  # LiveKit's 10 ms frames


def said(text: str) -> np.ndarray:
    clip = speech.speak(text)
    voiced = np.flatnonzero(np.abs(clip) > 1e-3)
    return soxr.resample(clip[voiced[0]: voiced[-1] + 1], speech.sample_rate(), RATE).astype(np.float32)


def pcm(wave: np.ndarray) -> np.ndarray:
    return np.clip(np.round(wave * 32767), -32768, 32767).astype(np.int16)


def frames(wave: np.ndarray, channels: int = 1):
    samples = pcm(wave)
    for k in range(0, len(samples) - FRAME + 1, FRAME):
        chunk = np.repeat(samples[k: k + FRAME, None], channels, axis=1)  # interleaved
        yield rtc.AudioFrame(chunk.tobytes(), RATE, channels, FRAME)


def question(silence_s: float = 0.5) -> np.ndarray:
    quiet = np.random.default_rng(0).normal(0, 1e-4, int(silence_s * RATE)).astype(np.float32)
    return np.concatenate([quiet[: RATE // 4], said("what time does the museum open tomorrow"), quiet])


def test_it_is_a_livekit_streaming_turn_detector_and_the_session_takes_it(exported):  # noqa: F811
    from livekit.agents import AgentSession

    async def run():  # LiveKit's session is made inside a running event loop, as in an agent
        detector = TurnFusionTurnDetector(exported, precision="fp32")
        assert isinstance(detector, _StreamingTurnDetector)
        assert isinstance(detector.stream(), _StreamingTurnDetectorStream)
        assert AgentSession(turn_detection=detector).turn_detection is detector

    asyncio.run(run())
    with pytest.raises(DataError, match="unlikely_threshold must be a probability in 0..1, got 1.5"):
        TurnFusionTurnDetector(exported, unlikely_threshold=1.5)


@pytest.mark.parametrize("channels", [1, 2])
def test_a_prediction_is_the_streaming_sessions_decision_on_the_same_audio_and_words(exported, channels):  # noqa: F811
    reference = StreamingTurnSession(exported, RATE, precision="fp32")
    decisions = []
    wave = question()
    for k, frame in enumerate(frames(wave)):
        if k == 60:
            reference.push_words("what time does the museum open tomorrow", final=True)
        decisions += [d for d in [reference.push_audio(np.frombuffer(frame.data, np.int16))] if d]
    want, = decisions

    async def run():
        detector = TurnFusionTurnDetector(exported, precision="fp32")
        stream = detector.stream()
        for k, frame in enumerate(frames(wave, channels)):
            if k == 60:
                detector.push_words("what time does the museum open tomorrow", final=True)
            stream.push_audio(frame)
        return await asyncio.wait_for(stream.predict(), 1.0)

    event = asyncio.run(run())
    assert event.type == "eot_prediction"
    assert event.end_of_turn_probability == pytest.approx(want.probabilities["shift"], abs=1e-6)
    assert event.backchannel_probability == pytest.approx(want.probabilities["backchannel"], abs=1e-6)


def test_a_prediction_asked_before_the_final_waits_for_it_and_new_speech_answers_not_the_end(exported):  # noqa: F811
    async def run():
        detector = TurnFusionTurnDetector(exported, precision="fp32", config=StreamConfig(max_final_wait_s=1.0))
        stream = detector.stream()
        wave = question()
        for k, frame in enumerate(frames(wave)):
            if k == 60:
                detector.push_words("what time does the museum open", final=False)
            stream.push_audio(frame)
        pending = stream.predict()  # the speech ended on interim words: the final is due
        await asyncio.sleep(0.05)
        assert not pending.done()
        detector.push_words("what time does the museum open tomorrow", final=True)
        event = await asyncio.wait_for(pending, 1.0)
        read = stream.session.history[-1]["text"]
        asked = stream.predict()  # the next utterance, asked early; then the user speaks again
        for frame in frames(question(0.0)[: RATE // 2]):
            stream.push_audio(frame)
        superseded = await asyncio.wait_for(asked, 1.0)
        detector.bot_said("at nine")
        return event, read, superseded, stream.session.history[-1]["text"]

    event, read, superseded, last = asyncio.run(run())
    assert read == "what time does the museum open tomorrow" and event.end_of_turn_probability > 0
    assert superseded.end_of_turn_probability == 0.0 and last == "at nine"


def test_the_sessions_transcripts_and_the_agents_messages_reach_the_model(exported):  # noqa: F811
    from livekit.agents import AgentSession
    from livekit.agents.llm import ChatMessage
    from livekit.agents.voice.events import ConversationItemAddedEvent, UserInputTranscribedEvent

    async def run():
        detector = TurnFusionTurnDetector(exported, precision="fp32")
        session = AgentSession(turn_detection=detector)
        detector.attach(session)
        stream = detector.stream()
        for frame in frames(question()):
            stream.push_audio(frame)
        session.emit("user_input_transcribed", UserInputTranscribedEvent(transcript="what time", is_final=False))
        session.emit("user_input_transcribed", UserInputTranscribedEvent(transcript="what time is it", is_final=True))
        session.emit("conversation_item_added",
                     ConversationItemAddedEvent(item=ChatMessage(role="assistant", content=["at nine"])))
        return [h["text"] for h in stream.session.history]

    assert asyncio.run(run()) == ["what time is it", "at nine"]


def test_frames_livekit_may_send_never_raise_into_its_audio_task_and_the_stream_goes_on(exported, caplog):  # noqa: F811
    async def run():
        detector = TurnFusionTurnDetector(exported, precision="fp32")
        assert detector.config.max_final_wait_s == 0  # LiveKit asks a manual-flush recogniser for its final later
        stream = detector.stream()
        stream.push_audio(rtc.AudioFrame(np.zeros(RATE // 2, np.int16).tobytes(), RATE, 1, RATE // 2))  # 0.5 s
        stream.push_audio(rtc.AudioFrame(np.zeros(160, np.int16).tobytes(), 16000, 1, 160))  # another rate
        detector.push_words("what time does the museum open tomorrow", final=True)
        for frame in frames(question()):
            stream.push_audio(frame)
        event = await asyncio.wait_for(stream.predict(), 1.0)
        await stream.aclose()
        closed = await asyncio.wait_for(stream.predict(), 1.0)
        return event, closed

    event, closed = asyncio.run(run())
    assert "a frame at 16000 Hz, but this stream is 48000 Hz" in caplog.text
    assert "in one chunk" not in caplog.text  # the 0.5 s frame went to the session in pieces
    assert event.end_of_turn_probability > 0 and closed.end_of_turn_probability == 1.0


def test_a_prediction_of_an_utterance_the_session_drops_is_answered_at_once(exported):  # noqa: F811
    async def run():
        detector = TurnFusionTurnDetector(exported, precision="fp32", config=StreamConfig(max_word_wait_s=0.3))
        stream = detector.stream()
        wave = question(1.0)  # no words ever come: the session drops the utterance 0.3 s after its end
        pending, answered_at = None, None
        for k, frame in enumerate(frames(wave)):
            stream.push_audio(frame)
            if pending is None and k * FRAME / RATE > len(wave) / RATE - 0.9:  # asked at the end of speech
                pending = stream.predict()
            if pending is not None and pending.done() and answered_at is None:
                answered_at = k * FRAME / RATE
        return await asyncio.wait_for(pending, 1.0), answered_at, len(wave) / RATE, stream.session

    event, answered_at, length, session = asyncio.run(run())
    assert session.skipped_without_words == 1 and event.end_of_turn_probability == 0.0
    assert answered_at is not None and answered_at < length  # by the stream, not by LiveKit's timeout

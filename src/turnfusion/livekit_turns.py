# SPDX-License-Identifier: Apache-2.0
"""turnfusion as a LiveKit Agents turn detector (`pip install turnfusion[livekit]`: livekit-agents 1.8).

LiveKit's `AgentSession(turn_detection=...)` takes a streaming turn detector: it pushes every frame of the user's
audio to the detector's stream and, once its VAD has heard 0.2 s of silence, asks for a prediction; its answer is the
probability that the user's turn has ended (below `unlikely_threshold`, the agent waits the endpointing's `max_delay`
instead of `min_delay`) and, optionally, how fitting a backchannel is. `TurnFusionTurnDetector` answers both from one
decision of a `StreamingTurnSession` (its own Silero VAD, the audio and the words): P(shift) and P(backchannel).

LiveKit hands a streaming detector audio, not words; the words come from the session's events, which `attach` wires:

    detector = TurnFusionTurnDetector("models/fusion-onnx")
    session = AgentSession(stt=..., llm=..., tts=..., vad=silero.VAD.load(), turn_detection=detector)
    detector.attach(session)   # the user's transcripts (interim and final) and the agent's words reach the model

A prediction waits, as the streaming session does, for the final words of an utterance that ended on interim ones
(`StreamConfig.max_final_wait_s`), within the stream's `prediction_timeout`; a prediction superseded by new speech
is answered 0 (not the end), as LiveKit's own detector does. The model runs in the event loop (a decision costs a
few milliseconds); its first stream opens the model folder, checked (`OnnxTurnModel`).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
from livekit import rtc
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, APIConnectOptions
from livekit.agents.voice.turn import TurnDetectionEvent

from turnfusion.choices import Bound
from turnfusion.errors import DataError
from turnfusion.onnx_backend import OnnxTurnModel
from turnfusion.streaming import Decision, StreamConfig, StreamingTurnSession

PROBABILITY = Bound(0.0, 1.0)


class TurnFusionTurnDetector:
    """A LiveKit streaming turn detector (`livekit.agents.voice.turn._StreamingTurnDetector`) on an exported
    turnfusion model. `unlikely_threshold`: a P(shift) below it makes the agent wait longer; `backchannel_threshold`:
    a P(backchannel) at or above it lets LiveKit signal a backchannel; `languages`: the languages the model was
    trained in (None: any)."""

    def __init__(self, model: OnnxTurnModel | str | Path, *, precision: str = "int8", threads: int | None = 1,
                 config: StreamConfig | None = None, unlikely_threshold: float = 0.5,
                 backchannel_threshold: float = 0.5, languages: list[str] | None = None,
                 prediction_timeout: float | None = None):
        for name, value in (("unlikely_threshold", unlikely_threshold),
                            ("backchannel_threshold", backchannel_threshold)):
            if not PROBABILITY.holds(value):
                raise DataError(f"{name} must be a probability in 0..1, got {value!r:.40}")
        self.onnx = model if isinstance(model, OnnxTurnModel) else OnnxTurnModel(model, precision, threads)
        self.config = config or StreamConfig()
        self._unlikely, self._backchannel = float(unlikely_threshold), float(backchannel_threshold)
        self.languages = None if languages is None else {language.lower() for language in languages}
        # a prediction may wait for the final words; LiveKit commits without one after this long
        self.prediction_timeout = prediction_timeout or self.config.max_final_wait_s + 1.0
        self._streams: list[TurnFusionDetectorStream] = []

    @property
    def model(self) -> str:
        return "turnfusion"

    @property
    def provider(self) -> str:
        return "turnfusion"

    def stream(self, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS) -> TurnFusionDetectorStream:
        stream = TurnFusionDetectorStream(self)
        self._streams.append(stream)
        return stream

    async def unlikely_threshold(self, language) -> float | None:
        return self._unlikely

    async def backchannel_threshold(self, language) -> float | None:
        return self._backchannel

    async def supports_language(self, language) -> bool:
        return self.languages is None or language is None or str(language).lower() in self.languages

    # --- words: LiveKit gives a streaming detector none; `attach` routes the session's ---------------------
    def attach(self, session) -> None:
        """Route an `AgentSession`'s transcripts (`user_input_transcribed`) and the agent's finished messages
        (`conversation_item_added`, role assistant) to the open streams."""
        session.on("user_input_transcribed", lambda ev: self.push_words(ev.transcript, ev.is_final))

        def added(ev) -> None:
            item = ev.item
            if getattr(item, "role", None) == "assistant" and getattr(item, "text_content", None):
                self.bot_said(item.text_content)

        session.on("conversation_item_added", added)

    def push_words(self, text: str, final: bool) -> None:
        for stream in self._open_streams():
            stream.push_words(text, final)

    def bot_said(self, text: str) -> None:
        for stream in self._open_streams():
            stream.bot_said(text)

    def _open_streams(self) -> list[TurnFusionDetectorStream]:
        self._streams = [s for s in self._streams if not s.closed]
        return self._streams


class TurnFusionDetectorStream:
    """One input stream (`livekit.agents.voice.turn._StreamingTurnDetectorStream`): the user's audio frames into a
    `StreamingTurnSession`, its decisions out as `TurnDetectionEvent`s."""

    def __init__(self, detector: TurnFusionTurnDetector):
        self.detector = detector
        self.session: StreamingTurnSession | None = None  # opened at the first frame's sample rate
        self.closed = False
        self._decision: Decision | None = None  # the last decision not yet answered
        self._request: asyncio.Future[TurnDetectionEvent] | None = None
        self._clock: tuple[float, float] | None = None  # (wall time, session seconds) at the last frame

    @property
    def model(self) -> str:
        return self.detector.model

    @property
    def provider(self) -> str:
        return self.detector.provider

    @property
    def is_fallback(self) -> bool:
        return False

    @property
    def prediction_timeout(self) -> float:
        return self.detector.prediction_timeout

    async def unlikely_threshold(self, language) -> float | None:
        return await self.detector.unlikely_threshold(language)

    async def backchannel_threshold(self, language) -> float | None:
        return await self.detector.backchannel_threshold(language)

    async def supports_language(self, language) -> bool:
        return await self.detector.supports_language(language)

    # --- audio and words -------------------------------------------------------------------------------
    def push_audio(self, frame: rtc.AudioFrame) -> None:
        if self.closed:
            return
        pcm = np.frombuffer(frame.data, dtype=np.int16)
        if frame.num_channels > 1:  # the user's microphone: its first channel
            pcm = pcm.reshape(-1, frame.num_channels)[:, 0]
        if self.session is None:
            self.session = StreamingTurnSession(self.detector.onnx, frame.sample_rate, self.detector.config)
        elif frame.sample_rate != self.session.sample_rate:
            raise DataError(f"audio frame at {frame.sample_rate} Hz, but this stream is {self.session.sample_rate} Hz "
                            "(one rate per stream)")
        was_speaking = self.session.user_speaking
        decision = self.session.push_audio(pcm)
        self._clock = (time.time(), self.session.samples / self.session.rate)
        self._offer(decision)
        if not was_speaking and self.session.user_speaking:  # the user speaks again: what was asked is moot
            self._decision = None
            self.cancel_inference()

    def push_words(self, text: str, final: bool) -> None:
        if self.session is not None and not self.closed:
            self._offer(self.session.push_words(text, final))

    def bot_said(self, text: str) -> None:
        if self.session is not None and not self.closed:
            self.session.bot_said(text)

    # --- predictions -----------------------------------------------------------------------------------
    def predict(self) -> asyncio.Future[TurnDetectionEvent]:
        """The end-of-turn probability of the utterance that just ended: its decision if it came already, else the
        next one the session gives."""
        self.cancel_inference()
        future: asyncio.Future[TurnDetectionEvent] = asyncio.get_running_loop().create_future()
        if self.closed:
            future.set_result(self._event(None))
        elif self._decision is not None:
            future.set_result(self._event(self._decision))
            self._decision = None
        else:
            self._request = future
        return future

    def cancel_inference(self, *, timed_out: bool = False) -> None:
        request, self._request = self._request, None
        if request is not None and not request.done():
            request.set_result(self._event(None))

    def flush(self, reason: str | None = None) -> None:
        """A turn boundary: what was decided and not asked for is dropped."""
        self._decision = None
        self.cancel_inference()

    def end_input(self) -> None:
        self.flush()
        self.closed = True

    async def aclose(self) -> None:
        self.end_input()

    def _offer(self, decision: Decision | None) -> None:
        if decision is None:
            return
        if self._request is not None and not self._request.done():
            request, self._request = self._request, None
            request.set_result(self._event(decision))
        else:
            self._decision = decision

    def _event(self, decision: Decision | None) -> TurnDetectionEvent:
        if decision is None:  # superseded or closed: not the end, as LiveKit's own detector answers
            return TurnDetectionEvent(type="eot_prediction", end_of_turn_probability=0.0,
                                      last_speaking_time=time.time())
        wall, heard = self._clock or (time.time(), decision.decided_s)
        return TurnDetectionEvent(type="eot_prediction", end_of_turn_probability=decision.probabilities["shift"],
                                  backchannel_probability=decision.probabilities["backchannel"],
                                  last_speaking_time=wall - (heard - decision.speech_end_s),
                                  inference_duration=decision.compute_ms / 1000)

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

LiveKit asks a recogniser that finalises on request (`manual_flush`) for its final only once the prediction came, so
the detector decides on the words it has (`StreamConfig(max_final_wait_s=0)` by default here; a late final then
revises the decision of a prediction still pending). A prediction superseded by new speech is answered 0 (not the
end), one of an utterance the session dropped (too short, no words in time, refused by the model) 0 at once, one on
a closed stream 1, as LiveKit's own detector answers. Audio is never an error inside LiveKit's audio task: a frame
the session refuses (another rate mid-stream, say) is logged and dropped, and a long frame (LiveKit sends 0.5 s of
silence when a track ends) is fed in pieces. The model runs in the event loop (the text encoder and head after the
silence, the audio encoder at the end of speech: a few milliseconds with the demo model, ~50 ms distil-size).
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import numpy as np
from livekit import rtc
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, APIConnectOptions
from livekit.agents.voice.turn import TurnDetectionEvent

from turnfusion.choices import Bound
from turnfusion.errors import DataError
from turnfusion.live.streaming import MAX_CHUNK_S, Decision, StreamConfig, StreamingTurnSession, silero_model_path
from turnfusion.serving.onnx_backend import OnnxTurnModel

log = logging.getLogger(__name__)
PROBABILITY = Bound(0.0, 1.0)
PIECE_S = 0.2  # a longer LiveKit frame goes to the session in pieces (it takes at most MAX_CHUNK_S)


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
        silero_model_path()  # the session's VAD model: missing is an error here, not inside LiveKit's audio task
        self.config = config or StreamConfig(max_final_wait_s=0)
        self._unlikely, self._backchannel = float(unlikely_threshold), float(backchannel_threshold)
        self.languages = None if languages is None else {language.lower() for language in languages}
        # a prediction may wait for words (and for the final); LiveKit commits without one after this long
        self.prediction_timeout = prediction_timeout or max(self.config.max_word_wait_s,
                                                            self.config.max_final_wait_s) + 1.0
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
        try:
            self._push(frame)
        except DataError as exc:  # never raised into LiveKit's audio task, which would stop hearing the user
            log.error("turnfusion: audio frame dropped: %s", exc)

    def _push(self, frame: rtc.AudioFrame) -> None:
        pcm = np.frombuffer(frame.data, dtype=np.int16)
        if frame.num_channels > 1:  # the user's microphone: its first channel
            pcm = pcm.reshape(-1, frame.num_channels)[:, 0]
        if self.session is None:
            self.session = StreamingTurnSession(self.detector.onnx, frame.sample_rate, self.detector.config)
        elif frame.sample_rate != self.session.sample_rate:
            raise DataError(f"a frame at {frame.sample_rate} Hz, but this stream is {self.session.sample_rate} Hz "
                            "(one rate per stream)")
        piece = int(min(PIECE_S, MAX_CHUNK_S) * frame.sample_rate)
        for start in range(0, len(pcm), piece):
            was_speaking, dropped = self.session.user_speaking, self._dropped()
            decision = self.session.push_audio(pcm[start: start + piece])
            self._clock = (time.time(), self.session.samples / self.session.rate)
            self._offer(decision)
            if not was_speaking and self.session.user_speaking:  # the user speaks again: what was asked is moot
                self._decision = None
                self.cancel_inference()
            elif self._dropped() > dropped:  # the session will not decide that utterance: not the end
                self.cancel_inference()

    def _dropped(self) -> int:
        return self.session.skipped_without_words + self.session.skipped_inputs

    def push_words(self, text: str, final: bool) -> None:
        if self.session is not None and not self.closed:
            try:
                self._offer(self.session.push_words(text, final))
            except DataError as exc:  # text that is not Unicode: dropped, as a session event must not raise
                log.error("turnfusion: words dropped: %s", exc)

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
            future.set_result(self._event(None, 1.0))
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
        elif not decision.revised:  # a revision nobody asked for is not the next utterance's answer
            self._decision = decision

    def _event(self, decision: Decision | None, default: float = 0.0) -> TurnDetectionEvent:
        if decision is None:  # superseded or dropped: not the end (0); closed: the end (1), as LiveKit's answers
            return TurnDetectionEvent(type="eot_prediction", end_of_turn_probability=default,
                                      last_speaking_time=time.time())
        wall, heard = self._clock or (time.time(), decision.decided_s)
        return TurnDetectionEvent(type="eot_prediction", end_of_turn_probability=decision.probabilities["shift"],
                                  backchannel_probability=decision.probabilities["backchannel"],
                                  last_speaking_time=wall - (heard - decision.speech_end_s),
                                  inference_duration=decision.compute_ms / 1000)

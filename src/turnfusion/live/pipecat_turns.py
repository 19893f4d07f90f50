# SPDX-License-Identifier: Apache-2.0
"""turnfusion in a pipecat voice agent (`pip install turnfusion[pipecat]`: pipecat-ai 1.14, Python >= 3.11).

- `TurnFusionTurnAnalyzer`: a pipecat turn analyzer (`BaseTurnAnalyzer`) on an exported turnfusion model. At
  the end of the user's speech (pipecat's VAD stop) it reads the speech and the words heard so far, and the
  user's turn is complete when the model says the other person takes the turn (shift); otherwise the agent
  waits (the user goes on, or only a backchannel would fit). `stop_secs` of silence ends the turn whatever the
  model says, as with Smart Turn.
- `TurnFusionUserTurnStopStrategy`: pipecat's `TurnAnalyzerUserTurnStopStrategy` that also hands the
  transcriptions to the analyzer (the model reads words, Smart Turn does not), and ends the turn when a final that
  came after the analysis makes it a shift (`TurnFusionTurnAnalyzer.analyze_again`).
- `BackchannelUserTurnStartStrategy`: while the agent speaks, a short listener response ("mm-hmm", "yeah",
  "right") does not start a user turn, so the agent is not cut off; anything else does (a real barge-in): words
  that are no backchannel, or speech that goes on past `max_backchannel_s` without backchannel words (VAD speed).
  While the agent is silent, speech starts the turn as pipecat's VAD strategy does.

    analyzer = TurnFusionTurnAnalyzer("models/fusion-onnx")
    strategies = UserTurnStrategies(start=[BackchannelUserTurnStartStrategy(analyzer=analyzer)],
                                    stop=[TurnFusionUserTurnStopStrategy(turn_analyzer=analyzer)])
    user_aggregator = LLMUserAggregator(context, params=LLMUserAggregatorParams(
        user_turn_strategies=strategies, vad_analyzer=SileroVADAnalyzer()))

What the agent said reaches the model's context through `analyzer.bot_said(text)` (call it when the agent's
turn ends, e.g. from the assistant aggregator's `on_assistant_turn_stopped`). `examples/pipecat_agent.py` runs
one scripted conversation through pipecat's own classes.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from pipecat.audio.turn.base_turn_analyzer import BaseTurnAnalyzer, BaseTurnParams, EndOfTurnState
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    Frame,
    InputAudioRawFrame,
    InterimTranscriptionFrame,
    TranscriptionFrame,
    UserBackchannelFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.metrics.metrics import MetricsData, TurnMetricsData
from pipecat.turns.types import ProcessFrameResult
from pipecat.turns.user_start.base_user_turn_start_strategy import BaseUserTurnStartStrategy
from pipecat.turns.user_stop.turn_analyzer_user_turn_stop_strategy import TurnAnalyzerUserTurnStopStrategy

from turnfusion.choices import Bound
from turnfusion.errors import DataError, one_line
from turnfusion.live.onset_gate import OnsetGate, OnsetTracker
from turnfusion.live.streaming import LateFinals, Words, checked_words
from turnfusion.serving.onnx_backend import (
    IncrementalAudio,
    OnnxTurnModel,
    TurnSession,
    pieces_for,
    remember_from_pieces,
)
from turnfusion.serving.processing import audio_array
from turnfusion.text.backchannels import BACKCHANNELS_EN, backchannel_units, is_backchannel  # noqa: F401 (public here too)

log = logging.getLogger(__name__)
USER, AGENT = 0, 1



class TurnFusionParams(BaseTurnParams):
    """Settings of `TurnFusionTurnAnalyzer`."""

    stop_secs: float = 3.0  # silence after speech that ends the turn whatever the model says
    pre_speech_ms: float = 300.0  # audio kept from before the VAD's start
    max_duration_secs: float = 8.0  # the most audio kept for one utterance (the model reads its last seconds)
    shift_threshold: float | None = None  # complete when P(shift) >= this; None: when shift is the likeliest class
    final_lag_secs: float = 1.0  # how long after an analysed utterance's end its final words may still come
    # with an export whose audio front end is local, the front end runs on the utterance every this many seconds of
    # it (on the event loop: 1.5-2.7 ms per 0.2 s at distil size), so the analysis at the VAD's stop runs only the
    # rest (`StreamConfig.front_end_piece_s`); 0: off. Used when pipecat's rate is the model's
    front_end_piece_secs: float = 0.2


class TurnFusionTurnAnalyzer(BaseTurnAnalyzer):
    """pipecat's turn analyzer interface on an exported turnfusion model (see the module's docstring).

    pipecat calls `append_audio` and `add_transcription` on its event loop and `analyze_end_of_turn` there too;
    what the model reads is taken on the loop, and only the model runs in the analyzer's thread."""

    def __init__(self, model: OnnxTurnModel | str | Path, *, precision: str = "int8", threads: int | None = 1,
                 sample_rate: int | None = None, params: TurnFusionParams | None = None,
                 on_decision: Callable[[str, dict[str, float], EndOfTurnState], None] | None = None):
        """`on_decision(words, probabilities, state)` is called after every analysis (logging, metrics)."""
        super().__init__(sample_rate=sample_rate)
        self._params = checked_params(params or TurnFusionParams())
        self.on_decision = on_decision
        self.turns = TurnSession(model, precision, threads)
        self._executor: ThreadPoolExecutor | None = None
        self.last_probabilities: dict[str, float] | None = None
        self._vad_start_secs = 0.0
        self._words = Words()
        self.late = LateFinals(self._params.final_lag_secs)  # analysed utterances whose finals may still come
        self._user_spoke = self._agent_spoke = False  # since the last analysis: which late finals may be its
        self._clock = 0  # samples of audio received: the clock of `late`
        self._odd_byte = b""  # half an int16 sample at the end of the last buffer
        self.dropped_words = 0  # transcriptions not valid Unicode, or of no utterance (after the turn was cleared)
        self.skipped_inputs = 0  # utterances the model refused (logged), e.g. under 50 ms of audio
        self._ignoring = False  # the utterance being heard is a backchannel: never read, never context
        self._revisable = None  # (the last analysis's record, its audio, the context it read): `analyze_again`
        self._last_state: EndOfTurnState | None = None  # the last analysis's verdict
        self.revision_due = False  # its final words came after it, changed, and nobody spoke since
        self.encoded_in_pieces = self.encoded_whole = 0  # analyses whose audio was run in pieces, or whole
        self.clear()

    @property
    def speech_triggered(self) -> bool:
        return self._speech_triggered

    @property
    def params(self) -> TurnFusionParams:
        return self._params

    def update_vad_start_secs(self, vad_start_secs: float) -> None:
        """The VAD starts `vad_start_secs` into the speech: that much more audio is kept from before its start."""
        self._vad_start_secs = vad_start_secs

    # --- words -----------------------------------------------------------------------------------
    def add_transcription(self, text: str, final: bool) -> None:
        """Words of the user from the speech recogniser: interim (replaced by the next) or final (kept). A final
        that comes after its utterance was analysed (recognisers finalise late) replaces that utterance's interim
        words in the context, never joins the next utterance (`streaming.LateFinals`: pipecat gives no word times, so
        the last analysed utterance's while nobody spoke since, else the oldest analysed on interim words within
        `final_lag_secs`). Text that is not valid Unicode is dropped and counted (`dropped_words`): as a final, it
        ends a late utterance's wait like a final without words."""
        try:
            text = checked_words(text, "transcription")
        except DataError as exc:
            self.dropped_words += 1
            log.warning("dropped: %s", one_line(exc))
            text = ""
        if self._ignoring:
            return
        owner = self.late.owner(self._clock / self._rate, text, None, self._user_spoke or self._utterance_open,
                                self._agent_spoke)
        if owner is not None:
            before = owner.words.text()
            if final and self.late.attach(owner, text, self.turns.history, self.turns.model.processor.has_words) \
                    and owner.words.text() != before:
                self.revision_due = self._revision_allowed(owner)
            return
        if not self._utterance_open:  # the turn they belonged to ended unread (`clear`): never the next one's
            self.dropped_words += 1
            return
        self._words.add(text, final)

    def bot_said(self, text: str) -> None:
        """What the agent said (whole, or as far as it got before an interruption): context for the next turn."""
        if self.turns.model.processor.has_words(checked_words(text, "bot_said")):  # "" or "...": nothing said
            self.turns.remember(text, AGENT)
            self._agent_spoke = True

    def ignore_backchannel(self, units: frozenset | None = None) -> None:
        """The utterance being heard (or just analysed) was a backchannel while the agent spoke: it leaves the
        buffers and the context, and its later words are dropped, until the user speaks again."""
        decided = self.late.decided[-1] if self.late.decided and not self._utterance_open else None
        if decided is not None and is_backchannel(decided.words.text(), units=units):  # analysed: undo it
            if decided.entry is None:  # still in the model: it never joins the context
                decided.refused = True
            elif self.turns.history and self.turns.history[-1] is decided.entry:
                self.turns.history.pop()
                self.late.forget(decided.entry)
        self._words, self._ignoring = Words(), True
        self._audio, self._samples, self._utterance_open = [], 0, False
        self._pieces = self._pieces_for_this_model()
        self.waiting_for_words = False

    def words(self) -> str:
        return self._words.text()

    # --- audio -----------------------------------------------------------------------------------
    @property
    def _rate(self) -> int:
        rate = self.sample_rate or 16000
        if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)) or not 8000 <= rate <= 192000:
            raise DataError(f"sample_rate must be a whole number of samples per second in 8000..192000, got "
                            f"{rate!r:.40}")
        return int(rate)

    def append_audio(self, buffer: bytes, is_speech: bool) -> EndOfTurnState:
        """pipecat's audio: bytes of mono int16 PCM at `sample_rate`, split anywhere."""
        if not isinstance(buffer, (bytes, bytearray, memoryview)):
            raise DataError(f"append_audio takes bytes of int16 PCM (pipecat's InputAudioRawFrame.audio), got "
                            f"{type(buffer).__name__}")
        rate = self._rate
        buffer = self._odd_byte + bytes(buffer)
        cut = len(buffer) - len(buffer) % 2
        samples, self._odd_byte = np.frombuffer(buffer[:cut], dtype=np.int16), buffer[cut:]
        self._clock += len(samples)
        if is_speech and not self._utterance_open:  # the user speaks again: a new utterance, with its own words
            self._utterance_open, self._ignoring, self._user_spoke = True, False, True
            self.revision_due = False  # the last analysis is no longer the last thing said
        if is_speech:
            self._silence_s, self._speech_triggered = 0.0, True
        elif self._speech_triggered:
            self._silence_s += len(samples) / rate
            if self._silence_s >= self._params.stop_secs:
                self.clear()
                return EndOfTurnState.COMPLETE
        self._audio.append(samples)
        self._samples += len(samples)
        seconds = (self._params.max_duration_secs if self._utterance_open
                   else self._params.pre_speech_ms / 1000 + self._vad_start_secs)
        kept = self._samples
        while self._audio and self._samples - len(self._audio[0]) >= int(seconds * rate):
            self._samples -= len(self._audio.pop(0))
        if self._samples > 2 * int(seconds * rate) + rate:  # one buffer longer than all that is kept
            self._audio = [np.concatenate(self._audio)[-int(seconds * rate):]]
            self._samples = len(self._audio[0])
        self._run_front_end(dropped=self._samples != kept)
        return EndOfTurnState.INCOMPLETE

    def _pieces_for_this_model(self) -> IncrementalAudio | None:
        model = self.turns.model
        return pieces_for(model, self._params.front_end_piece_secs) if isinstance(model, OnnxTurnModel) else None

    def _run_front_end(self, dropped: bool) -> None:
        """The front end on the utterance heard so far, a piece at a time (`front_end_piece_secs`), while it is open;
        audio dropped from its start moves its frames, so it is then encoded whole when analysed."""
        pieces = self._pieces
        if pieces is None or not self._utterance_open or self._rate != self.turns.model.processor.config.sample_rate:
            return
        if dropped:
            self._pieces = None
            return
        if self._samples - pieces.count * pieces.hop >= self._params.front_end_piece_secs * self._rate:
            pieces.extend(np.concatenate(self._audio).astype(np.float32) / 32768.0)

    async def analyze_end_of_turn(self) -> tuple[EndOfTurnState, MetricsData | None]:
        return await self._analyze(self._take())

    def decide(self) -> tuple[EndOfTurnState, MetricsData | None]:
        """`analyze_end_of_turn` without the thread: the model's probabilities of what happens after the utterance
        heard since the last analysis, COMPLETE on shift; INCOMPLETE without words or audio yet (`stop_secs`
        still ends the turn)."""
        return self._analyze_now(self._take())

    async def analyze_again(self) -> tuple[EndOfTurnState, MetricsData | None]:
        """The last analysis again, on the final words that came after it (`revision_due`): an utterance kept open on
        interim words ("what time does the museum open") ends when its final ("... tomorrow") says the user is
        done, without waiting for `stop_secs`."""
        return await self._analyze(self._take_again())

    def decide_again(self) -> tuple[EndOfTurnState, MetricsData | None]:
        """`analyze_again` without the thread."""
        return self._analyze_now(self._take_again())

    # --- one analysis: taken on the event loop, the model in the analyzer's thread, the context changed on the loop --
    async def _analyze(self, heard: dict | None) -> tuple[EndOfTurnState, MetricsData | None]:
        if heard is None:
            return EndOfTurnState.INCOMPLETE, None
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1)
        try:
            result = await asyncio.get_running_loop().run_in_executor(self._executor, self._predict, heard)
        except DataError as exc:
            return self._skip(heard, exc)
        return self._conclude(heard, *result)

    def _analyze_now(self, heard: dict | None) -> tuple[EndOfTurnState, MetricsData | None]:
        if heard is None:
            return EndOfTurnState.INCOMPLETE, None
        try:
            result = self._predict(heard)
        except DataError as exc:
            return self._skip(heard, exc)
        return self._conclude(heard, *result)

    def _predict(self, heard: dict) -> tuple[dict[str, float], list]:
        """(probabilities, the prepared waveforms) of a taken utterance: the model only, no state is changed."""
        model = self.turns.model
        context, waves = model.processor.prepare(heard["text"], heard["audio"], USER, heard["context"], self._rate)
        if heard["first"] and model.processor.uses_audio:
            # the pieces read pipecat's audio: they are the model's only at the model's rate
            pieces = heard["pieces"] if self._rate == model.processor.config.sample_rate else None
            if remember_from_pieces(model, pieces, heard["audio"], waves[0]):
                self.encoded_in_pieces += 1
            else:
                self.encoded_whole += 1
        return model.probabilities(context, waves), waves

    def _conclude(self, heard: dict, probabilities: dict[str, float], waves: list) -> tuple:
        """On the loop: the utterance joins the context (a first analysis, unless it was taken back as a backchannel
        meanwhile), its finals that came while the model ran replace its words there, and the verdict; a revision is
        due when those finals changed the words of an open turn."""
        decided, text = heard["decided"], heard["text"]
        if heard["first"] and not decided.refused:
            wave = waves[0] if self.turns.model.processor.reads_context_audio else None
            decided.entry = self.turns.append(text, USER, wave)
            if decided.entry is not None and decided.words.text() != text:
                decided.entry["text"] = decided.words.text()
        state, metrics = self._verdict(heard, probabilities)
        self.revision_due = heard["first"] and self._revision_allowed(decided) and decided.words.text() != text
        return state, metrics

    def _revision_allowed(self, decided) -> bool:
        """The last analysis is still the last thing said, and its turn has not ended (`clear`): pipecat waits for
        the final transcript after a COMPLETE, so a final that changes the words can still keep the turn open."""
        return (self._revisable is not None and self._revisable[0] is decided and self._last_state is not None
                and not (self._user_spoke or self._utterance_open or self._agent_spoke))

    def _skip(self, heard: dict, exc: DataError) -> tuple[EndOfTurnState, None]:
        """An utterance the model refuses (under 50 ms of audio, say): logged and counted, its later words dropped;
        the turn stays open (`stop_secs` still ends it)."""
        log.warning("utterance skipped: %s", one_line(exc))
        heard["decided"].refused = True
        self.skipped_inputs += 1
        return EndOfTurnState.INCOMPLETE, None

    def _take_again(self) -> dict | None:
        due = self.revision_due and self._revisable is not None and self._revision_allowed(self._revisable[0])
        self.revision_due = False  # once; and never after the user spoke again (the flag may have waited)
        if not due:
            return None
        decided, audio, context = self._revisable
        self._revisable = None  # one revision per analysis
        return {"text": decided.words.text(), "audio": audio, "started": time.perf_counter(), "context": context,
                "decided": decided, "first": False}

    def _take(self) -> dict | None:
        """The utterance heard since the last analysis (text, audio, the context it reads, its `LateFinals` record),
        taken out of the buffers; None (buffers kept) when there is nothing to read yet."""
        text = self.words()
        self.waiting_for_words = bool(self._audio) and not self.turns.model.processor.has_words(text)
        if not self._audio or self.waiting_for_words or self._ignoring:
            return None
        audio = np.concatenate(self._audio).astype(np.float32) / 32768.0  # as the pieces were made
        pieces, self._pieces = self._pieces, self._pieces_for_this_model()  # the model's thread owns the old one
        words, self._words = self._words, Words()
        end_s = self._clock / self._rate
        self._audio, self._samples, self._utterance_open = [], 0, False
        self._user_spoke = self._agent_spoke = False
        # recorded now, its context item once the model has run: a final that comes while it runs is its own
        decided = self.late.record(None, words, end_s - len(audio) / self._rate, end_s)
        context = list(self.turns.history)
        self._revisable = (decided, audio, context)  # what `analyze_again` reads
        self.revision_due, self._last_state = False, None  # no revision before this analysis has its verdict
        return {"text": text, "audio": audio, "started": time.perf_counter(), "context": context,
                "decided": decided, "first": True, "pieces": pieces}

    def _verdict(self, heard: dict, probabilities: dict[str, float]) -> tuple[EndOfTurnState, MetricsData]:
        text, started = heard["text"], heard["started"]
        self.last_probabilities = probabilities
        threshold = self._params.shift_threshold
        complete = (probabilities["shift"] >= threshold if threshold is not None
                    else max(probabilities, key=probabilities.get) == "shift")
        if complete:
            self._speech_triggered, self._silence_s = False, 0.0
        elif not heard["first"]:  # a revision that keeps the turn open: `stop_secs` of silence ends it again
            self._speech_triggered = True
        state = EndOfTurnState.COMPLETE if complete else EndOfTurnState.INCOMPLETE
        self._last_state = state
        if self.on_decision is not None:
            self.on_decision(text, probabilities, state)
        return (state,
                TurnMetricsData(processor="TurnFusionTurnAnalyzer", model="turnfusion", is_complete=complete,
                                probability=probabilities["shift"],
                                e2e_processing_time_ms=(time.perf_counter() - started) * 1000))

    def clear(self) -> None:
        """The turn ends (the analyzer on `stop_secs`, pipecat at each turn stop): its unread audio and words go, and
        its last analysis is no longer revised."""
        self._words = Words()
        self.revision_due, self._revisable, self._last_state = False, None, None
        self.waiting_for_words = False  # the last analysis found speech but no words: it is redone when they come
        self._audio: list[np.ndarray] = []
        self._samples = 0
        self._pieces = self._pieces_for_this_model()
        self._speech_triggered = False
        self._utterance_open = False
        self._silence_s = 0.0

    async def cleanup(self) -> None:
        if self._executor is not None:  # the analyzer stays usable: pipecat sets strategies up again
            self._executor.shutdown(wait=False)
            self._executor = None


class TurnFusionUserTurnStopStrategy(TurnAnalyzerUserTurnStopStrategy):
    """pipecat's turn-analyzer stop strategy that also gives the user's words to a `TurnFusionTurnAnalyzer`, and
    analyses again when the words of an utterance come after its end of speech (the VAD's stop is a system frame:
    it overtakes transcriptions still queued), and when its final words come after an analysis that kept the turn
    open on interim words (`analyze_again`): the turn ends when the final words say so, not `stop_secs` later."""

    def __init__(self, *, turn_analyzer: TurnFusionTurnAnalyzer, **kwargs):
        super().__init__(turn_analyzer=turn_analyzer, **kwargs)
        self.analyzer = turn_analyzer

    async def process_frame(self, frame: Frame) -> ProcessFrameResult:
        words = isinstance(frame, (TranscriptionFrame, InterimTranscriptionFrame))
        if words:
            self.analyzer.add_transcription(frame.text, final=isinstance(frame, TranscriptionFrame))
            await self._revise()  # before pipecat ends a COMPLETE turn on this final: the final words decide
        result = await super().process_frame(frame)
        if await self._revise():  # its final came during the analysis: due once the analysis ended
            await self._maybe_trigger_user_turn_stopped()
        if words and self.analyzer.waiting_for_words and self._vad_stopped and not self._vad_user_speaking:
            state, metrics = await self.analyzer.analyze_end_of_turn()
            await self._handle_prediction_result(metrics)
            if not self._vad_user_speaking:  # the user may have gone on while the model ran
                self._turn_complete = state == EndOfTurnState.COMPLETE
                await self._maybe_trigger_user_turn_stopped()
        return result

    async def _revise(self) -> bool:
        """The last analysis again, when its final words came after it changed (`analyze_again`): the turn is
        complete or not as the new verdict says (a question finished by its final ends the turn; an interim that read
        as a question but was not keeps it open). False when none was due."""
        if not self.analyzer.revision_due or self._vad_user_speaking:
            return False
        state, metrics = await self.analyzer.analyze_again()
        await self._handle_prediction_result(metrics)
        if not self._vad_user_speaking:  # the user may have gone on while the model ran
            self._turn_complete = state == EndOfTurnState.COMPLETE
        return True


PARAM_BOUNDS = {"stop_secs": Bound(0.05, 60.0), "pre_speech_ms": Bound(0.0, 5000.0),
                "max_duration_secs": Bound(0.1, 60.0), "final_lag_secs": Bound(0.0, 60.0),
                "front_end_piece_secs": Bound(0.0, 10.0),
                "shift_threshold": Bound(0.0, 1.0)}  # None: shift when it is the likeliest class


def checked_params(params: TurnFusionParams) -> TurnFusionParams:
    """Each setting in its range (one line naming it otherwise): a negative or NaN length would make the analyzer
    keep no audio and never analyse, silently."""
    for name, bound in PARAM_BOUNDS.items():
        value = getattr(params, name)
        if not (name == "shift_threshold" and value is None) and not bound.holds(value):
            raise DataError(f"TurnFusionParams.{name} must be {bound.rule()}, got {value!r:.40}")
    return params


class BackchannelUserTurnStartStrategy(BaseUserTurnStartStrategy):
    """Starts the user's turn on speech while the agent is silent; on speech that began while the agent spoke, once
    its words are not a backchannel (`is_backchannel`: the words are judged even when their final comes after the
    agent stopped), or, at VAD speed, when the user is still speaking `max_backchannel_s` after pipecat's VAD start
    and no words yet make it a backchannel: a backchannel is short, and the recogniser's first words come late.
    "Still speaking" is the strategy's own Silero VAD on the last 0.05 s (pipecat's VAD reports a stop only
    `stop_secs` later). A backchannel's final words leave the user's aggregation, go on as a `UserBackchannelFrame`,
    and, given the analyzer, leave the model's context."""

    def __init__(self, *, analyzer: TurnFusionTurnAnalyzer | None = None, max_backchannel_words: int = 3,
                 use_interim: bool = True, backchannels=BACKCHANNELS_EN, max_backchannel_s: float | None = 0.5,
                 onset_gate: OnsetGate | str | Path | None = None, **kwargs):
        """`backchannels`: the words and phrases that do not interrupt the agent, in the users' language
        (default `BACKCHANNELS_EN`; German, say: ("ja", "mhm", "genau", "okay", "ach so")). `max_backchannel_s`:
        speech over the agent that goes on this long after pipecat's VAD start (itself `start_secs`, 0.2 s, after
        the onset) interrupts the agent unless its words so far are a backchannel; None waits for the words.
        `onset_gate` (stage `onset_gate`'s directory, e.g. models/onset_gate): speech over the agent that its first
        `window_s` (0.2 s) says is no backchannel interrupts then, once pipecat's VAD has started; what it lets pass
        waits for the words and `max_backchannel_s` as without it."""
        super().__init__(**kwargs)
        if max_backchannel_s is not None and not Bound(0.0, 10.0).holds(max_backchannel_s):
            raise DataError(f"max_backchannel_s must be seconds in 0..10 or None, got {max_backchannel_s!r:.40}")
        if not (onset_gate is None or isinstance(onset_gate, (str, Path, OnsetGate))):
            raise DataError(f"onset_gate must be a gate directory or an OnsetGate, got {type(onset_gate).__name__}")
        self.onset_gate = OnsetGate.load(onset_gate) if isinstance(onset_gate, (str, Path)) else onset_gate
        # the gate judges one onset per speech, the first over the agent (as it was trained): its verdict, and when
        # that onset was (audio seconds); both cleared when pipecat's VAD ends the speech or the user's turn starts
        self._onset_says_turn, self._judged_onset = False, None
        self.onset_decisions: list[float] = []  # P(backchannel) of each onset the gate read over the agent
        self.analyzer, self.max_backchannel_words, self.use_interim = analyzer, max_backchannel_words, use_interim
        self.units = backchannel_units(backchannels)
        self.max_backchannel_s = max_backchannel_s
        self.bot_speaking = False
        self._over_bot = False  # the user's current speech began while the agent spoke
        self._said_backchannel = False  # its words so far are a backchannel: the time gate holds
        self._gate_at: float | None = None  # audio seconds when speech still going on interrupts the agent
        self._heard_s = 0.0  # audio seconds received
        self._voiced_s = -1.0  # the end of the last audio the strategy's VAD heard as speech
        self._onsets: OnsetTracker | None = None  # the VAD on the user's audio, opened with the first audio
        self.backchannels: list[str] = []  # what the user said that let the agent go on

    async def handle_user_turn_started(self):
        self.bot_speaking = self._over_bot = False
        self._gate_at, self._onset_says_turn, self._judged_onset = None, False, None

    async def _listen(self, frame: InputAudioRawFrame) -> bool:
        """Track speech on the user's audio; whether the agent is interrupted now: the onset gate says this speech
        over it is no backchannel, or the user still speaks past the time gate; either only after pipecat's VAD
        start over the agent, and unless the words so far are a backchannel."""
        if self._onsets is None:
            window_s = self.onset_gate.window_s if self.onset_gate is not None else 0.2
            self._onsets = OnsetTracker(frame.sample_rate, window_s)
        self._heard_s += len(frame.audio) / 2 / frame.num_channels / frame.sample_rate
        pcm = np.frombuffer(frame.audio, dtype=np.int16).reshape(-1, frame.num_channels)[:, 0]
        window = self._onsets.push(audio_array(pcm, "pipecat audio"))
        if self._onsets.heard_speech:
            self._voiced_s = self._heard_s
        if window is not None and self.onset_gate is not None and self.bot_speaking and self._may_judge():
            p = self.onset_gate.p_backchannel(window)
            self.onset_decisions.append(p)
            self._onset_says_turn, self._judged_onset = p < self.onset_gate.threshold, self._onsets.window_onset_s
        if self._gate_at is None or self._said_backchannel:
            return False
        return (self._onset_says_turn and not self._stale()) or (  # a verdict given before the VAD start counts now
            self._heard_s >= self._gate_at and self._heard_s - self._voiced_s <= VOICED_WITHIN_S)

    def _stale(self) -> bool:
        """Whether the judged onset is older than pipecat's VAD start of the same speech could be (noise the VAD
        never took for speech, say)."""
        return self._judged_onset is not None and self._heard_s - self._judged_onset > STALE_VERDICT_S

    def _may_judge(self) -> bool:
        """No onset judged in this speech yet, or the one judged is stale and pipecat's VAD has not started."""
        return self._judged_onset is None or (self._gate_at is None and self._stale())

    async def process_frame(self, frame: Frame) -> ProcessFrameResult:
        if isinstance(frame, InputAudioRawFrame) and (self.max_backchannel_s is not None
                                                       or self.onset_gate is not None):
            if await self._listen(frame):  # speech over the agent that is no backchannel: a barge-in
                self._gate_at, self._onset_says_turn = None, False
                await self.trigger_user_turn_started()
                return ProcessFrameResult.STOP
        elif isinstance(frame, BotStartedSpeakingFrame):
            self.bot_speaking = True
        elif isinstance(frame, BotStoppedSpeakingFrame):
            self.bot_speaking = False
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            self._gate_at, self._onset_says_turn, self._judged_onset = None, False, None  # short: its words decide
        elif isinstance(frame, VADUserStartedSpeakingFrame):
            self._over_bot, self._said_backchannel = self.bot_speaking, False
            if not self.bot_speaking:
                await self.trigger_user_turn_started()
                return ProcessFrameResult.STOP
            if self.max_backchannel_s is not None or self.onset_gate is not None:
                self._gate_at = self._heard_s + (self.max_backchannel_s if self.max_backchannel_s is not None
                                                 else math.inf)
        elif isinstance(frame, TranscriptionFrame) or (
                self.use_interim and isinstance(frame, InterimTranscriptionFrame)):
            if not re.search(r"[^\W_]", frame.text):  # no word yet
                return ProcessFrameResult.CONTINUE
            if not (self.bot_speaking or self._over_bot):
                await self.trigger_user_turn_started()
                return ProcessFrameResult.STOP
            if is_backchannel(frame.text, self.max_backchannel_words, self.units):
                self._said_backchannel = True
                if isinstance(frame, TranscriptionFrame):  # the agent goes on; these words are no user turn
                    self.backchannels.append(frame.text)
                    if self.analyzer is not None:
                        self.analyzer.ignore_backchannel(self.units)
                    await self.trigger_reset_aggregation()
                    await self.push_frame(UserBackchannelFrame(text=frame.text, user_id=frame.user_id,
                                                               timestamp=frame.timestamp))
                return ProcessFrameResult.CONTINUE
            self._gate_at = None
            await self.trigger_user_turn_started()
            return ProcessFrameResult.STOP
        return ProcessFrameResult.CONTINUE


VOICED_WITHIN_S = 0.05  # the gate's "still speaking": speech in the last VAD frame or two
STALE_VERDICT_S = 1.0  # pipecat's VAD starts start_secs (0.2 s) after an onset: a verdict this old is of other sound

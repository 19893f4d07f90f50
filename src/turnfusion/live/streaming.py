# SPDX-License-Identifier: Apache-2.0
"""Live use: a session fed audio chunks as they arrive and words as a speech recogniser emits them, giving a
decision (keep / shift / backchannel) at every end of the user's speech. Built on the ONNX backend: numpy,
onnxruntime, tokenizers and soxr, no torch.

    session = StreamingTurnSession("models/fusion-onnx", sample_rate=16000)
    for chunk in microphone:                       # 10-32 ms of int16 or float samples, one rate per session
        decision = session.push_audio(chunk)
        ...
    session.push_words("so i went to the", final=False)       # interim, replaced by the next words
    session.push_words("so i went to the market", final=True)  # final, kept
    session.bot_said("did you like it")             # the agent's turn joins the context (speaker 1)

The user is speaker 0, the agent speaker 1, as a `<ts>` goes wherever the speaker changes (`history`).

End of speech: Silero VAD's streaming model (`SileroStream`) marks each 32 ms frame; after speech, the first
frame below `StreamConfig.threshold - 0.15` is where the speech ended, and `min_silence_s` of silence later the
decision is given for the utterance up to that end. The audio is encoded as soon as the speech ends (the model
then waits for the silence), so the decision after the last chunk costs the text encoder and the head only;
speech that resumes within `min_silence_s` continues the same utterance and the early encoding is dropped.

Words belong to the utterance being spoken. When the speech ends with an interim piece still open, the decision
waits for its final (`max_final_wait_s` from the end of speech, then the interim words decide), so that a turn is not
handed on with words missing. Recognisers finalise late: a final that belongs to an utterance
already decided (`LateFinals`: by its times, `start` in seconds of this session's audio, when given; else the
last decided utterance while nobody spoke since, or the oldest one decided on interim words within
`final_lag_s`) replaces that utterance's interim words in the context, which the next decision reads; it never
joins another utterance, and one that fits none is dropped and counted (`late.dropped`). Words before any speech
open the next utterance. Without words at the end of speech, the decision waits for them (`push_words` then
returns it) for up to `max_word_wait_s`, then the utterance is dropped (`Decision` is not given; counted in
`skipped_without_words`). A late final that changes the words of the last decision while nobody has spoken since
gives that utterance's decision again, on its final words (`push_words` returns it, `Decision.revised`): the agent
can take a turn the interim words did not show, or hold back. Words are checked when they come (a string of valid
Unicode); words that give the model nothing to read ("", "?") count as none.

Memory is bounded whatever the session's length: the utterance's audio keeps its last `model max_seconds`
(plus the silence being waited out), the context its last utterances, the encodings cache a fixed number.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import numbers
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soxr

from turnfusion.choices import Bound
from turnfusion.errors import DataError, one_line
from turnfusion.serving.onnx_backend import OnnxTurnModel, TurnSession, pieces_for, remember_from_pieces
from turnfusion.serving.processing import MIN_SECONDS, audio_array, check_full_scale
from turnfusion.text.words import normalize

log = logging.getLogger(__name__)
VAD_RATE, VAD_FRAME, VAD_CONTEXT = 16000, 512, 64  # Silero's streaming model at 16 kHz: 32 ms frames
MAX_CHUNK_S = 0.25  # a longer chunk is no live stream (and could hold two ends of speech)
MAX_EARLY_FINALS = 16  # words kept for speech not heard yet
MAX_FINALS = 256  # final pieces of one utterance
MAX_LATE_FINALS = 16  # finals a decided utterance takes after its decision
COMMON_RATES = (8000, 16000, 22050, 24000, 32000, 44100, 48000)
USER, AGENT = 0, 1


# the same MIT-licensed silero_vad.onnx, in the silero-vad wheel, pipecat and LiveKit's Silero plugin
SILERO_COPIES = (("silero_vad", "data"), ("pipecat", "audio/vad/data"), ("livekit.plugins.silero", "resources"))


def silero_model_path() -> Path:
    """Silero VAD's streaming ONNX model, from the `silero-vad` wheel or the copy pipecat or livekit-plugins-silero
    ships (found without importing them: silero-vad imports torch)."""
    for package, folder in SILERO_COPIES:
        try:
            spec = importlib.util.find_spec(package)
        except ModuleNotFoundError:  # a dotted name whose parent package is not installed
            spec = None
        if spec is not None and spec.submodule_search_locations:
            path = Path(next(iter(spec.submodule_search_locations))) / folder / "silero_vad.onnx"
            if path.is_file():
                return path
    raise DataError("no Silero VAD model: pip install 'turnfusion[pipecat]' or 'turnfusion[livekit]', or pip install "
                    "--no-deps silero-vad (its model without the torch it would pull)")


class SileroStream:
    """Speech probability of each 32 ms frame (512 samples at 16 kHz), Silero's state carried between frames."""

    def __init__(self):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
        self.session = ort.InferenceSession(str(silero_model_path()), options, providers=["CPUExecutionProvider"])
        self.reset()

    def reset(self) -> None:
        self.state = np.zeros((2, 1, 128), np.float32)
        self.context = np.zeros(VAD_CONTEXT, np.float32)

    def __call__(self, frame: np.ndarray) -> float:
        x = np.concatenate([self.context, frame.astype(np.float32, copy=False)])[None]
        out, self.state = self.session.run(None, {"input": x, "state": self.state, "sr": np.array(VAD_RATE, np.int64)})
        self.context = x[0, -VAD_CONTEXT:]
        return float(out.reshape(-1)[0])


class SpeechFrames:
    """`SileroStream` on a stream of any rate: each chunk resampled to the VAD's 16 kHz and cut into its 32 ms frames
    (a remainder waits for the next chunk); one speech probability per frame. The streaming session's VAD, and the
    pipecat start strategy's."""

    def __init__(self, sample_rate: int):
        self.sample_rate, self.vad = sample_rate, SileroStream()
        self.reset()

    def reset(self) -> None:
        self.vad.reset()
        self._resampler = soxr.ResampleStream(self.sample_rate, VAD_RATE, 1, dtype="float32")
        self._pending = np.zeros(0, np.float32)

    def probabilities(self, wave: np.ndarray) -> list[float]:
        """The speech probability of every frame `wave` (float32, this stream's rate) completes."""
        return [p for _, p in self.frames_and_probabilities(wave)]

    def frames_and_probabilities(self, wave: np.ndarray) -> list[tuple[np.ndarray, float]]:
        """Every frame `wave` completes (16 kHz), with its speech probability."""
        self._pending = np.concatenate([self._pending, self._resampler.resample_chunk(wave)])
        out = []
        while len(self._pending) >= VAD_FRAME:
            frame, self._pending = self._pending[:VAD_FRAME], self._pending[VAD_FRAME:]
            out.append((frame, self.vad(frame)))
        return out


def is_number(value) -> bool:
    """A finite real number (numpy's too), not a bool."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:  # an int past float's range
        return False


@dataclass(frozen=True)
class StreamConfig:
    threshold: float = 0.5  # Silero speech probability where speech starts (it ends below threshold - 0.15)
    min_silence_s: float = 0.2  # silence after speech before the decision (speech resuming earlier continues it)
    min_speech_s: float = 0.1  # shorter speech is a noise, not an utterance
    pre_roll_s: float = 0.1  # audio kept from before the detected start (the VAD reacts a frame late)
    max_word_wait_s: float = 1.0  # how long a decision waits for words after the end of speech
    # with words but an interim piece still open at the end of speech, how long (from the end of speech) the decision
    # waits for the final, so that the turn is not handed on with words missing; then the interim words decide. Set it
    # to your recogniser's P99 time to final: pipecat's `stt_latency` lists 0.35 s (Deepgram) to 2.1 s, 1.0 s by
    # default, the default here. It costs only when the final lags. 0: decide on interim words (late finals revise)
    max_final_wait_s: float = 1.0
    final_lag_s: float = 1.0  # how long after an utterance's end of speech a final without times may still be its
    # with an export whose audio front end is local (`OnnxTurnModel.front_end`), the front end runs on the user's audio
    # every `front_end_piece_s` while they speak, so the end of speech costs the last piece and the rest of the audio
    # path; 0: the whole segment is encoded at the end of speech (as for any other export)
    front_end_piece_s: float = 0.2

    # one range per field: a threshold below 0.3 never sees speech end (Silero gives noise ~0.02), speech shorter
    # than the model's 50 ms is no input, and waits past a minute are no live conversation
    BOUNDS = {"threshold": Bound(0.3, 0.95), "min_silence_s": Bound(0.0, 10.0),
              "min_speech_s": Bound(MIN_SECONDS, 10.0), "pre_roll_s": Bound(0.0, 2.0),
              "max_word_wait_s": Bound(0.0, 60.0), "max_final_wait_s": Bound(0.0, 60.0),
              "final_lag_s": Bound(0.0, 60.0), "front_end_piece_s": Bound(0.0, 10.0)}

    def __post_init__(self):
        for name, bound in self.BOUNDS.items():
            if not bound.holds(getattr(self, name)):
                raise DataError(f"StreamConfig.{name} must be {bound.rule()}, got {getattr(self, name)!r:.40}")


@dataclass
class Decision:
    """What happens after one user utterance, given at `decided_s` (seconds of session audio)."""
    probabilities: dict[str, float]  # keep / shift / backchannel
    text: str  # the words the decision read
    speech_start_s: float
    speech_end_s: float
    decided_s: float
    compute_ms: float  # time spent in the call that gave the decision (after its last chunk or words)
    revised: bool = False  # a second decision of the same utterance: its final words came after the first

    @property
    def label(self) -> str:
        return max(self.probabilities, key=self.probabilities.get)


def checked_words(text, what: str = "words") -> str:
    """A recogniser's words as given, refused (DataError) when they are not a string of valid Unicode: checked when
    they arrive, so that they cannot fail a later decision."""
    if not isinstance(text, str):
        raise DataError(f"{what} must be a string, got {type(text).__name__}")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise DataError(f"{what}: not valid Unicode ({text[exc.start]!r} at character {exc.start})") from None
    return text


@dataclass
class Words:
    """What a speech recogniser said of one utterance: its final pieces, kept (at most MAX_FINALS: past them a
    stream of finals is hostile, and each is dropped and counted), and the latest interim one."""
    finals: list[str] = field(default_factory=list)
    interim: str = ""
    dropped: int = 0

    def add(self, text: str, final: bool) -> None:
        if final:
            if len(self.finals) >= MAX_FINALS:
                self.dropped += 1
                return
            self.finals.append(text)
            self.interim = ""
        else:
            self.interim = text

    def text(self) -> str:
        return " ".join(" ".join([*self.finals, self.interim]).split())


def continues(interim: str, final: str) -> bool:
    """Whether a final without times can be the one that replaces `interim`: it has at least half of its words
    (recognisers revise an interim, they do not replace it with other words)."""
    said = set(normalize(interim).split())
    return bool(said) and len(said & set(normalize(final).split())) >= len(said) / 2


@dataclass
class _Decided:
    entry: dict | None  # its item of the context (`TurnSession.history`); None for a model that reads no context
    words: Words  # as decided; an interim piece left is what a late final replaces
    start_s: float  # speech start and end, seconds of the session's audio clock
    end_s: float
    refused: bool = False  # heard but not decided (no words in time, or an input the model refused): its words go
    late_finals: int = 0  # finals taken after the decision


class LateFinals:
    """The last decided utterances, whose final words may still come: a recogniser finalises after the end of speech
    (pipecat lists 0.35 s as a worst case) and a decision does not wait for it. One rule for the streaming session and
    the pipecat analyzer: a late final belongs to the utterance its times fall in; without times, to the last
    decided utterance while nobody spoke since, else to the oldest decided on interim words (a final is
    still due: recognisers finalise in speech order) that ended at most `lag_s` ago. It replaces that utterance's
    interim words in the context the next decision reads, never joins another utterance; a late final that
    fits none, has no words, or whose utterance has left the context is dropped and counted (`dropped`)."""

    def __init__(self, lag_s: float, size: int = 8):
        self.lag_s, self.size = lag_s, size
        self.decided: list[_Decided] = []
        self.dropped = 0

    def record(self, entry: dict | None, words: Words, start_s: float, end_s: float,
               refused: bool = False) -> _Decided:
        """An utterance heard and decided (or `refused`): its late finals are its own from now on."""
        decided = _Decided(entry, words, start_s, end_s, refused)
        self.decided = [*self.decided, decided][-self.size:]
        return decided

    def forget(self, entry: dict) -> None:
        self.decided = [d for d in self.decided if d.entry is not entry]

    def is_late(self, start: float | None) -> bool:
        """Whether words that began at `start` belong to an utterance already heard (decided or refused)."""
        return start is not None and bool(self.decided) and start < self.decided[-1].end_s

    def owner(self, now_s: float, text: str, start: float | None = None, user_spoke: bool = True,
              agent_spoke: bool = True) -> _Decided | None:
        """The decided utterance late words belong to (see the class), or None. `user_spoke` / `agent_spoke`: speech
        of the user / the agent since the last decision."""
        if start is not None:
            tolerance = 0.1  # recognisers' word times and the VAD's ends differ by a frame or two (32 ms)
            return next((d for d in reversed(self.decided)
                         if d.start_s - tolerance <= start < d.end_s + tolerance), None)
        if not self.decided:
            return None
        due = next((d for d in self.decided if d.words.interim and continues(d.words.interim, text)
                    and (not user_spoke or now_s - d.end_s <= self.lag_s)), None)
        if due is not None:  # the oldest utterance whose interim words this final carries
            return due
        last = self.decided[-1]
        if not user_spoke and (not agent_spoke or last.words.interim):
            return last  # no other user utterance they could belong to
        return None

    def attach(self, owner: _Decided | None, text: str, history: list[dict], has_words) -> bool:
        """A late final of `owner` replaces its interim words; False (dropped, counted) when it cannot. A final without
        words still ends the wait for one (the recogniser finalised nothing): the interim words stay in the context."""
        if owner is not None and owner.words.finals and owner.words.finals[-1] == text:
            return True  # the same final sent again
        if owner is None or owner.refused or not has_words(text) or owner.late_finals >= MAX_LATE_FINALS:
            if owner is not None:
                owner.words.interim = ""
            self.dropped += 1
            return False
        owner.words.add(text, final=True)
        owner.late_finals += 1
        if owner.entry is not None:
            if not any(h is owner.entry for h in history):
                self.dropped += 1
                return False
            owner.entry["text"] = owner.words.text()
        return True


@dataclass
class _Utterance:
    start: int  # session sample (model rate) of the first kept audio sample
    speech_start: int
    audio: list[np.ndarray]
    words: Words
    speech_end: int | None = None  # set while the silence after it is waited out


class StreamingTurnSession:
    """A live conversation fed chunk by chunk: see the module's docstring."""

    def __init__(self, model: OnnxTurnModel | str | Path, sample_rate: int, config: StreamConfig | None = None,
                 precision: str = "int8", threads: int | None = None, verify: bool = True):
        self.model = model if isinstance(model, OnnxTurnModel) else OnnxTurnModel(model, precision, threads, verify)
        self.turns = TurnSession(self.model)  # the context, and the prediction of each utterance
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or not (
                8000 <= sample_rate <= 192000):
            raise DataError(f"sample_rate must be a whole number of samples per second in 8000..192000 (common: "
                            f"{list(COMMON_RATES)}), got {sample_rate!r}")
        self.sample_rate, self.config = int(sample_rate), config or StreamConfig()
        self.rate = self.model.processor.config.sample_rate
        frame = VAD_FRAME / VAD_RATE
        self.keep = int((self.model.processor.config.max_seconds + self.config.min_silence_s + 2 * frame) * self.rate)
        self.pre_roll = int(self.config.pre_roll_s * self.rate)
        self.recent_size = self.pre_roll + int((MAX_CHUNK_S + 2 * frame) * self.rate)
        self.vad = SpeechFrames(self.sample_rate)
        self.pieces = pieces_for(self.model, self.config.front_end_piece_s)  # None: encoded whole
        # audio dropped from an utterance's start goes in whole steps, so that the policy's cut (whole `window_hop`s
        # from the first sample) and the front end's frames stay where they were (`pieces_for`: at most 65,536)
        self.drop_step = max(self.model.processor.config.window_hop, self.pieces.hop if self.pieces else 1)
        self.reset()

    def reset(self) -> None:
        """A new conversation: no context, the clock back at 0."""
        self.vad.reset()
        self._to_model = soxr.ResampleStream(self.sample_rate, self.rate, 1, dtype="float32")
        self._recent = np.zeros(0, np.float32)  # the last model-rate audio, the pre-roll of the next utterance
        self.samples = 0  # model-rate samples received
        self._vad_samples = 0  # VAD-rate samples judged
        self.chunks = 0
        self._speaking = False  # the VAD's state
        self._utterance: _Utterance | None = None
        self._waiting: _Utterance | None = None  # its speech ended without words or final: the decision waits
        self._early = Words()  # words that came before the speech they belong to
        self.late = LateFinals(self.config.final_lag_s)  # decided utterances whose finals may still come
        self._user_spoke = self._agent_spoke = False  # since the last decision: which late finals may be its
        self.turns.reset()
        self.skipped_without_words = 0
        self.skipped_inputs = 0  # utterances the model refused (logged)
        self._revisable = None  # (the last decision's record, its audio, the context it read): see `_revise`
        self.last_decided_end_s: float | None = None
        self.encoded_in_pieces = self.encoded_whole = 0  # utterances whose audio the end of speech encoded so
        if self.pieces:
            self.pieces.reset()

    # --- input ---------------------------------------------------------------------------------
    def push_audio(self, chunk, sample_rate: int | None = None) -> Decision | None:
        """Feed one chunk (mono int16 / int32 PCM or float -1..1, any length up to MAX_CHUNK_S); returns the
        decision when this chunk completes an end of speech. An empty chunk changes nothing."""
        self.chunks += 1
        what = f"audio chunk {self.chunks}"
        if sample_rate is not None and sample_rate != self.sample_rate:
            raise DataError(f"{what}: sample rate {sample_rate!r}, but this session streams {self.sample_rate} Hz "
                            "(one rate per session: start a new one for another)")
        try:
            chunk = np.asarray(chunk)
        except (ValueError, TypeError) as exc:  # a ragged list
            raise DataError(f"{what}: not an array of samples ({one_line(exc, 80)})") from None
        wave = audio_array(chunk, what)
        if wave.ndim == 2 and wave.shape[1] == 1:
            wave = wave[:, 0]
        if wave.ndim != 1:
            raise DataError(f"{what}: a live stream is mono: samples as a 1-D array (or samples x 1), got shape "
                            f"{wave.shape}")
        if wave.size == 0:
            return None
        if len(wave) > MAX_CHUNK_S * self.sample_rate:
            raise DataError(f"{what}: {len(wave) / self.sample_rate:.2f} s in one chunk; a live stream sends "
                            f"10-32 ms chunks (at most {MAX_CHUNK_S} s)")
        check_full_scale(wave, what)
        started = time.perf_counter()
        self._append(self._to_model.resample_chunk(wave))
        decision = None
        for probability in self.vad.probabilities(wave):
            self._vad_samples += VAD_FRAME
            decision = self._on_frame(probability, started) or decision
        if self._waiting is not None:
            waited = self._seconds_since_end(self._waiting)
            if self._has_words(self._waiting) and waited > self.config.max_final_wait_s:
                waiting, self._waiting = self._waiting, None  # no final in time: the interim words decide
                decision = self._decide(waiting, started) or decision
            elif not self._has_words(self._waiting) and waited > self.config.max_word_wait_s:
                self._skip_waiting()
        return decision

    def push_words(self, text: str, final: bool, start: float | None = None,
                   end: float | None = None) -> Decision | None:
        """Words from the speech recogniser: an interim hypothesis (replaced by the next words) or a final one
        (kept), with its start / end in seconds of this session's audio when known. Returns the decision that
        was waiting for words, or the last decision revised on its late final words (`Decision.revised`), if any."""
        text = checked_words(text)
        received = self.samples / self.rate
        for name, value in (("start", start), ("end", end)):
            if value is None:
                continue
            if not is_number(value) or value < 0:
                raise DataError(f"words {text!r:.40}: {name} must be seconds >= 0, got {value!r:.40}")
            if value > received + 0.5:
                raise DataError(f"words {text!r:.40}: {name} {value} s is after the audio received ({received:.2f} "
                                "s): times are seconds of this session's audio")
        if start is not None and end is not None and end < start:
            raise DataError(f"words {text!r:.40}: end {end} is before start {start}")
        started = time.perf_counter()
        current = self._waiting or self._utterance
        if current is not None and start is not None and float(start) >= current.speech_start / self.rate - 0.1:
            owner, late = None, False  # the utterance being heard (or waited on) comes first
        elif start is not None:  # with times: late if they began before the last decided utterance ended
            start = float(start)
            owner = self.late.owner(received, text, start)
            late = owner is not None or self.late.is_late(start)
        else:
            user_spoke = self._user_spoke or self._utterance is not None or self._waiting is not None
            owner = self.late.owner(received, text, None, user_spoke, self._agent_spoke)
            late = owner is not None
        if late:  # a final of a decided utterance replaces its interim words (`LateFinals`); an interim is moot
            before = owner.words.text() if owner is not None else None
            if final and self.late.attach(owner, text, self.history, self.model.processor.has_words) \
                    and owner.words.text() != before:
                return self._revise(owner, started)
            return None
        target = self._waiting or self._utterance
        if target is not None:
            target.words.add(text, final)
        else:  # before the speech they belong to is heard (bounded: the VAD may never hear it)
            self._early.add(text, final)
            self._early.finals = self._early.finals[-MAX_EARLY_FINALS:]
        if self._waiting is not None and self._ready(self._waiting):
            waiting, self._waiting = self._waiting, None
            return self._decide(waiting, started)
        return None

    def bot_said(self, text: str) -> None:
        """The agent's utterance (what it said, whole or as far as it got): it joins the context as speaker 1."""
        if self.model.processor.has_words(checked_words(text, "bot_said")):  # "" or "...": nothing was said
            self.turns.remember(text, AGENT)
            self._agent_spoke, self._revisable = True, None

    @property
    def user_speaking(self) -> bool:
        """Whether the user is speaking now (or paused for less than `min_silence_s`)."""
        return self._utterance is not None

    # --- internals -----------------------------------------------------------------------------
    @property
    def history(self) -> list[dict]:
        """The utterances the next decision reads as context (`TurnSession.history`)."""
        return self.turns.history

    def _append(self, wave: np.ndarray) -> None:
        self.samples += len(wave)
        self._recent = np.concatenate([self._recent, wave])[-self.recent_size:]
        u = self._utterance
        if u is None:
            return
        u.audio.append(wave)
        kept = sum(len(a) for a in u.audio)
        if kept > 2 * self.keep:  # the policy reads the last max_seconds only
            dropped = (kept - self.keep) // self.drop_step * self.drop_step
            if dropped:
                u.audio = [np.concatenate(u.audio)[dropped:]]
                u.start += dropped
                if self.pieces:
                    self.pieces.drop(dropped)
        if self.pieces and u.speech_end is None and (
                kept - self.pieces.count * self.pieces.hop) >= self.config.front_end_piece_s * self.rate:
            self.pieces.extend(np.concatenate(u.audio))

    def _frame_start(self) -> int:
        """Model-rate session sample where the last judged VAD frame starts."""
        return int(round((self._vad_samples - VAD_FRAME) * self.rate / VAD_RATE))

    def _frame_end(self) -> int:
        return int(round(self._vad_samples * self.rate / VAD_RATE))

    def _seconds_since_end(self, u: _Utterance) -> float:
        """Silence heard after the utterance's speech, to the end of the last judged frame."""
        return (self._frame_end() - u.speech_end) / self.rate

    def _on_frame(self, probability: float, started: float) -> Decision | None:
        cfg, u = self.config, self._utterance
        if probability >= cfg.threshold:
            if not self._speaking:
                self._speaking = True
                if u is None:
                    if self._waiting is not None and self._has_words(self._waiting):
                        # the user goes on before the final came: the utterance joins the context on the words it
                        # has, and no decision is given (the user kept the turn)
                        waiting, self._waiting = self._waiting, None
                        self._decide(waiting, started)
                    elif self._waiting is not None:  # the user goes on before any words came: that utterance is lost
                        self._skip_waiting()
                    words, self._early = self._early, Words()
                    speech_start = self._frame_start()
                    start = max(self.samples - len(self._recent), speech_start - self.pre_roll)
                    pre_roll = self._recent[start - (self.samples - len(self._recent)):]
                    self._utterance = _Utterance(start, speech_start, [pre_roll.copy()], words)
                    if self.pieces:
                        self.pieces.reset()
                    self._user_spoke, self._revisable = True, None
                else:
                    u.speech_end = None  # speech resumed within min_silence_s: the same utterance
            return None
        if u is None or (self._speaking and probability >= cfg.threshold - 0.15):
            return None  # no utterance; or still speech (Silero's hysteresis: it ends below threshold - 0.15)
        if self._speaking:  # the first frame below: the speech ended where it starts
            self._speaking = False
            u.speech_end = self._frame_start()
            if self._long_enough(u):
                self._encode_early(u)
        if self._seconds_since_end(u) < cfg.min_silence_s:
            return None
        self._utterance = None
        if not self._long_enough(u):
            return None
        if not self._ready(u):  # no words yet, or an interim piece whose final may still come
            self._waiting = u
            return None
        return self._decide(u, started)

    def _has_words(self, u: _Utterance) -> bool:
        return self.model.processor.has_words(u.words.text())

    def _ready(self, u: _Utterance) -> bool:
        """Whether an utterance whose speech ended can be decided: it has words, and none is still interim (a model
        that reads no words is always ready; `max_final_wait_s: 0` decides on interim words)."""
        final_due = (self.model.processor.config.words and self.config.max_final_wait_s > 0
                     and self.model.processor.has_words(u.words.interim))  # "." or "..." is no word still to come
        return self._has_words(u) and not final_due

    def _long_enough(self, u: _Utterance) -> bool:
        return (u.speech_end - u.speech_start) / self.rate >= self.config.min_speech_s

    def _skip_waiting(self) -> None:
        u, self._waiting = self._waiting, None
        self.skipped_without_words += 1
        self._refuse(u)

    def _revise(self, decided: _Decided, started: float) -> Decision | None:
        """The last decision again, on the words its late final gave (`Decision.revised`): only while it is the last
        thing said (nobody spoke since), so that an agent can still act on it (take the turn the interim words did
        not show, or hold back). Cheap: the audio's encoding is remembered."""
        if self._revisable is None or self._revisable[0] is not decided or self._user_spoke or self._agent_spoke \
                or self._utterance is not None:
            return None
        _, audio, context = self._revisable
        text = decided.words.text()
        probabilities = self.model.predict(text, audio, USER, context, self.rate)
        return Decision(probabilities, text, decided.start_s, decided.end_s, self._frame_end() / self.rate,
                        (time.perf_counter() - started) * 1000, revised=True)

    def _refuse(self, u: _Utterance) -> None:
        """An utterance heard but not decided: its later words are its own (dropped), never the next one's."""
        self.late.record(None, u.words, u.speech_start / self.rate, u.speech_end / self.rate, refused=True)
        self._user_spoke = self._agent_spoke = False
        self._revisable = None  # someone spoke after the last decision: it is no longer the last thing said

    def _audio_of(self, u: _Utterance) -> np.ndarray:
        return np.concatenate(u.audio)[: max(0, u.speech_end - u.start)]

    def _encode_early(self, u: _Utterance) -> None:
        """Encode the utterance's audio as soon as its speech ends: the decision then finds it remembered. With the
        front end in pieces, only its frames not yet computed and the rest of the audio path run."""
        if not self.model.processor.uses_audio:
            return
        audio = self._audio_of(u)
        segment = self.model.processor.prepare("x", audio, USER, [], self.rate)[1][0]
        if remember_from_pieces(self.model, self.pieces, audio, segment):
            self.encoded_in_pieces += 1
        else:
            self.model.audio_vector(segment)
            self.encoded_whole += 1

    def _decide(self, u: _Utterance, started: float) -> Decision | None:
        text, audio, context = u.words.text(), self._audio_of(u), list(self.history)
        try:
            probabilities = self.turns.add(text, audio, USER, self.rate)
        except DataError as exc:  # an input the model refuses: this utterance is skipped, the session goes on
            log.warning("utterance at %.2f s skipped: %s", u.speech_start / self.rate, one_line(exc))
            self.skipped_inputs += 1
            self._refuse(u)
            return None
        decided = self.late.record(self.turns.last_entry, u.words, u.speech_start / self.rate, u.speech_end / self.rate)
        self._revisable = (decided, audio, context)
        self.last_decided_end_s = u.speech_end / self.rate
        self._user_spoke = self._agent_spoke = False
        return Decision(probabilities, text, u.speech_start / self.rate, u.speech_end / self.rate,
                        self._frame_end() / self.rate, (time.perf_counter() - started) * 1000)

# SPDX-License-Identifier: Apache-2.0
"""The barge-in onset gate: from the first `window_s` of speech over the agent, is it a backchannel or the start
of a turn? A logistic regression on level-free log-mel summaries, trained by stage `onset_gate` on the listener
responses and utterance onsets of two-channel recordings; numpy only, so the live runtime stays small.

    gate = OnsetGate.load("models/onset_gate")
    tracker = OnsetTracker(16000, gate.window_s)
    window = tracker.push(wave)            # None until `window_s` of speech since an onset, once per onset
    if window is not None and gate.interrupts(window): ...   # stop the agent: this is no backchannel

`OnsetTracker` is the one audio policy: the training stage cuts its windows with it too (`first_window`), so an
onset is the same Silero frame and a window the same samples in training and live.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from turnfusion.errors import DataError
from turnfusion.live.streaming import VAD_FRAME, VAD_RATE, SpeechFrames, is_number
from turnfusion.names import path_inside

GATE_FILE, GATE_FORMAT = "config.json", 1
SPEECH = 0.5  # Silero's speech probability threshold (StreamConfig.threshold's default)
PRE_ROLL_FRAMES = 1  # Silero marks speech about a frame late: the window starts one frame before its onset
N_FFT, WIN, HOP, N_MELS, F_MIN, F_MAX = 512, 400, 160, 32, 60.0, 7600.0  # 25 ms windows, 10 ms hop at 16 kHz
THIRDS = 3
FLOOR_DB = 30.0


def _mel_filters() -> np.ndarray:
    """HTK mel filterbank (N_MELS x N_FFT // 2 + 1). Written out (a dozen lines) rather than taken from librosa,
    which would bring scipy and numba into the live runtime."""
    def mel(f):
        return 2595.0 * np.log10(1.0 + f / 700.0)

    edges = 700.0 * (10 ** (np.linspace(mel(F_MIN), mel(F_MAX), N_MELS + 2) / 2595.0) - 1.0)
    bins = np.linspace(0, VAD_RATE / 2, N_FFT // 2 + 1)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising, falling = (bins - lower) / (centre - lower), (upper - bins) / (upper - centre)
    return np.maximum(0.0, np.minimum(rising, falling))


MEL = _mel_filters()


def onset_features(window: np.ndarray) -> np.ndarray:
    """Summaries of a window's log-mel spectrogram with its level removed (the recording's gain says nothing of what
    is said): per band the mean over the window, the mean of each third minus that mean, the spread over time; and
    the frame energy's contour in thirds. Float64, `feature_count()` long."""
    wave = np.asarray(window, np.float64)
    if len(wave) < WIN:
        raise DataError(f"an onset window needs at least {WIN} samples at {VAD_RATE} Hz, got {len(wave)}")
    wave = wave / (np.sqrt(np.mean(wave ** 2)) + 1e-12)  # the level, before the log's floor can see it
    starts = np.arange(0, len(wave) - WIN + 1, HOP)
    frames = wave[starts[:, None] + np.arange(WIN)] * np.hanning(WIN)
    mel = (np.abs(np.fft.rfft(frames, N_FFT)) ** 2) @ MEL.T
    # a floor FLOOR_DB under the window's mean: digital silence, a codec's quantisation and a quiet room's noise
    # all read alike (with a fixed floor the frame before the onset said which the recording had)
    logmel = np.log(mel + mel.mean() * 10 ** (-FLOOR_DB / 10) + 1e-30)
    thirds = np.array_split(logmel, THIRDS)
    mean = logmel.mean(axis=0)
    energy = logmel.mean(axis=1)
    return np.concatenate([mean, *[t.mean(axis=0) - mean for t in thirds], logmel.std(axis=0),
                           [e.mean() for e in np.array_split(energy, THIRDS)]])


def feature_count() -> int:
    return N_MELS * (THIRDS + 2) + THIRDS


def window_samples(window_s: float) -> int:
    """The samples of a window: `window_s` of speech after the onset frame's start, and the pre-roll frame."""
    return PRE_ROLL_FRAMES * VAD_FRAME + round(window_s * VAD_RATE)


class OnsetTracker:
    """Speech onsets on a stream (any rate; Silero's frames at 16 kHz): an onset is a speech frame after a
    non-speech one; `push` returns the onset's window (`window_samples`, 16 kHz) once `window_s` of audio has
    come since it, if the last frame is still speech (speech that already ended is short: its words decide), and
    then nothing until the next onset."""

    def __init__(self, sample_rate: int, window_s: float):
        self.frames, self.window_s = SpeechFrames(sample_rate), window_s
        self.keep = window_samples(window_s)
        self.reset()

    def reset(self) -> None:
        self.frames.reset()
        self._audio = np.zeros(0, np.float32)  # the last samples at 16 kHz: a window and a frame
        self._heard = 0  # samples at 16 kHz
        self._speaking = self.heard_speech = False  # the last frame / any frame of the last push was speech
        self._since = None  # samples since the open onset's frame began; None: no open onset
        self.onset_s: float | None = None  # when the last onset's frame began (seconds of audio at 16 kHz)
        self.window_onset_s: float | None = None  # the onset of the window `push` returned last

    def push(self, wave: np.ndarray) -> np.ndarray | None:
        """The window of an onset whose `window_s` ends in `wave` (the last, if several do), else None."""
        window, self.heard_speech = None, False
        for frame, p in self.frames.frames_and_probabilities(wave):
            self._audio = np.concatenate([self._audio, frame])[-(self.keep + VAD_FRAME):]
            speech = p >= SPEECH
            if speech and not self._speaking:
                self._since, self.onset_s = 0, self._heard / VAD_RATE
            self._heard += len(frame)
            self._speaking = speech
            self.heard_speech |= speech
            if self._since is None:
                continue
            self._since += len(frame)
            if self._since >= self.keep - PRE_ROLL_FRAMES * VAD_FRAME:
                start = len(self._audio) - self._since - PRE_ROLL_FRAMES * VAD_FRAME
                if speech and start >= 0:
                    window = self._audio[start:start + self.keep].copy()
                    self.window_onset_s = self.onset_s
                self._since = None
        return window


def first_window(tracker: OnsetTracker, wave: np.ndarray, not_before_s: float, not_after_s: float) -> np.ndarray | None:
    """The window `tracker` (reset here) cuts at the first onset between `not_before_s` and `not_after_s` seconds
    into `wave` (a stretch of one channel at the tracker's rate), as it would live; None when the VAD finds none
    there, or the speech ends within the window."""
    tracker.reset()
    step = max(1, round(tracker.frames.sample_rate * VAD_FRAME / VAD_RATE))
    for start in range(0, len(wave), step):
        window = tracker.push(wave[start:start + step])
        if tracker.onset_s is not None and tracker.onset_s > not_after_s:
            return None
        if window is not None and tracker.window_onset_s >= not_before_s:
            return window
    return None


@dataclass(frozen=True)
class OnsetGate:
    """A trained gate (stage `onset_gate`): standardise the features, then P(backchannel) = sigmoid(coef . x +
    intercept); the agent is interrupted when P(backchannel) < threshold."""

    window_s: float  # seconds of speech after the onset the gate reads (the decision comes this long after onset)
    mean: tuple[float, ...]  # the training features' means ...
    scale: tuple[float, ...]  # ... and standard deviations
    coef: tuple[float, ...]  # logistic regression weights (on standardised features)
    intercept: float
    threshold: float  # interrupt below this P(backchannel): chosen on val for `max_false_stop`
    max_false_stop: float  # the share of val backchannels it may stop the agent on
    trained_on: dict  # what it was trained and chosen on (counts, val and test figures)
    format: int = GATE_FORMAT

    def p_backchannel(self, window: np.ndarray) -> float:
        z = (onset_features(window) - np.asarray(self.mean)) / np.asarray(self.scale)
        return logistic(float(z @ np.asarray(self.coef)) + self.intercept)

    def interrupts(self, window: np.ndarray) -> bool:
        return self.p_backchannel(window) < self.threshold

    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / GATE_FILE
        path.write_text(json.dumps(asdict(self), indent=1) + "\n")
        return path

    @classmethod
    def load(cls, directory: str | Path) -> OnsetGate:
        """A gate directory, every field checked (names, types, lengths, finite numbers): one line otherwise."""
        path = path_inside(Path(directory), GATE_FILE)
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise DataError(f"{path}: no onset gate ({' '.join(str(exc).split())[:200]})") from None
        if isinstance(data, dict) and set(data) == {"format", "untrained"} and _is_format(data["format"]):
            raise DataError(f"{path}: no onset gate was trained ({str(data['untrained'])[:200]})")
        return cls.from_dict(data, str(path))

    @staticmethod
    def save_untrained(directory: str | Path, why: str) -> Path:
        """The stage's output when the corpus gives no gate (no two-channel recording, say): loading it says why."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / GATE_FILE
        path.write_text(json.dumps({"format": GATE_FORMAT, "untrained": why}, indent=1) + "\n")
        return path

    @classmethod
    def from_dict(cls, data, where: str = "onset gate") -> OnsetGate:
        names = {f for f in cls.__dataclass_fields__}
        if not isinstance(data, dict) or set(data) != names:
            got = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise DataError(f"{where}: fields must be {sorted(names)}, got {got}"[:300])
        if not _is_format(data["format"]):
            raise DataError(f"{where}: format {data['format']!r:.20} is not {GATE_FORMAT}")
        n = feature_count()
        for name in ("mean", "scale", "coef"):
            values = data[name]
            if not (isinstance(values, list) and len(values) == n and all(is_number(v) for v in values)):
                raise DataError(f"{where}: {name} must be {n} finite numbers")
        if not all(1e-12 <= v for v in data["scale"]) or not all(abs(v) <= 1e6 for v in data["mean"] + data["coef"]):
            raise DataError(f"{where}: scale must be at least 1e-12, mean and coef at most 1e6 in size")
        for name, low, high in (("window_s", 0.05, 2.0), ("intercept", -1e6, 1e6), ("threshold", 0.0, 1.0),
                                ("max_false_stop", 0.0, 1.0)):
            if not (is_number(data[name]) and low <= data[name] <= high):
                raise DataError(f"{where}: {name} must be a number in {low}..{high}, got {data[name]!r:.40}")
        if not isinstance(data["trained_on"], dict):
            raise DataError(f"{where}: trained_on must be a mapping")
        return cls(**{**data, **{k: tuple(float(v) for v in data[k]) for k in ("mean", "scale", "coef")}})


def logistic(z: float) -> float:
    """1 / (1 + e^-z), with z clipped to +-500 so that a crafted gate cannot overflow it."""
    return float(1.0 / (1.0 + math.exp(-min(max(z, -500.0), 500.0))))


def _is_format(value) -> bool:
    return type(value) is int and value == GATE_FORMAT

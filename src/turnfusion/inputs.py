"""The inputs of one prediction, prepared exactly as in training (a model's `preprocessing` config): the text
context (the same `text.context_string` as the tokenize stage) and each audio segment (the same
`segment.segment_policy` as the segment stage). Shared by the PyTorch predictor and the ONNX backend, and free of
torch, so a deployment needs neither.

Documented defaults: no context means the utterance is treated like the first of a conversation; a context
utterance without audio has no audio segment (as at the start of a conversation). The context is the history as
a live system has it: utterances that ended before this one began, oldest first; a `<ts>` goes wherever the
speaker changes (the `history` rule of training). Audio is a file path or an array (1-D, or 2-D with channels
last) with its sample rate.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from pathlib import Path

import numpy as np

from turnfusion.audio import load_mono, resample, select_channel
from turnfusion.choices import AUDIO_POOLINGS, FUSION_HEADS, MAX_CONTEXT, MODES, TEXT_POOLINGS
from turnfusion.errors import DataError
from turnfusion.schema import LABEL_NAMES
from turnfusion.segment import MIN_SECONDS, segment_policy
from turnfusion.text import PUNCTUATION_POLICIES, context_string, normalize

PREPROCESSING_KEYS = {"sample_rate", "max_seconds", "channels", "trim_vad_threshold", "max_length", "n_previous",
                      "punctuation", "trim_overlap"}
FULL_SCALE_LIMIT = 2.0  # float audio is full scale [-1, 1]; past this it is int16 values as floats, or broken


def check_preprocessing(prep, source: str, max_positions: int | None = None) -> None:
    """A model's `preprocessing` (from its config.json, which strangers may hand-edit) checked before any input is
    prepared with it: each key present, of its type and range; `max_length` within the text encoder's
    `max_positions`. A DataError names `source` and the key."""
    def bad(key: str, rule: str):
        return DataError(f"{source}: preprocessing.{key} must be {rule}, got {prep.get(key)!r:.60}")

    def whole(key: str, low: int) -> bool:
        value = prep.get(key)
        return isinstance(value, int) and not isinstance(value, bool) and value >= low

    if not isinstance(prep, dict):
        raise DataError(f"{source}: preprocessing must be an object, got {type(prep).__name__}")
    missing = sorted(PREPROCESSING_KEYS - set(prep))
    if missing:
        raise DataError(f"{source}: preprocessing lacks {missing}")
    if not whole("sample_rate", 1000) or prep["sample_rate"] > 384000:
        raise bad("sample_rate", "a whole number of Hz from 1000 to 384000")
    if not isinstance(prep["max_seconds"], (int, float)) or isinstance(prep["max_seconds"], bool) \
            or not 0.05 <= prep["max_seconds"] <= 3600:
        raise bad("max_seconds", "a number of seconds from 0.05 to 3600")
    if prep["channels"] not in ("mix", "speaker"):
        raise bad("channels", "mix or speaker")
    threshold = prep["trim_vad_threshold"]
    if threshold is not None and (not isinstance(threshold, (int, float)) or isinstance(threshold, bool)
                                  or not 0 < threshold < 1):
        raise bad("trim_vad_threshold", "null or a number strictly between 0 and 1")
    if not whole("max_length", 1) or (max_positions is not None and prep["max_length"] > max_positions):
        raise bad("max_length", f"a whole number from 1 to the text encoder's {max_positions or 'n_positions'}")
    if not whole("n_previous", 0) or prep["n_previous"] > MAX_CONTEXT:
        raise bad("n_previous", f"a whole number from 0 to {MAX_CONTEXT}")
    if prep["punctuation"] not in PUNCTUATION_POLICIES:
        raise bad("punctuation", f"one of {list(PUNCTUATION_POLICIES)}")
    if not isinstance(prep["trim_overlap"], bool):
        raise bad("trim_overlap", "true or false")


def audio_array(audio: np.ndarray, what: str) -> np.ndarray:
    """An audio array as float32: signed integer PCM scaled by its type's range (int16 / 32768), float as given;
    other types (bool, unsigned, object, complex) are a DataError, never read as numbers."""
    if np.issubdtype(audio.dtype, np.signedinteger):
        return audio.astype(np.float32) / float(-np.iinfo(audio.dtype).min)
    if not np.issubdtype(audio.dtype, np.floating):
        raise DataError(f"{what}: audio samples must be float (full scale -1..1) or signed integer PCM, got "
                        f"dtype {audio.dtype}")
    if audio.ndim not in (1, 2):
        raise DataError(f"{what}: audio must be 1-D, or 2-D with channels last, got shape {audio.shape}")
    return audio.astype(np.float32, copy=False)


def check_full_scale(wave: np.ndarray, what: str) -> None:
    """Finite and within +-FULL_SCALE_LIMIT: what training saw (int16 PCM), give or take a resampler's overshoot."""
    if not np.isfinite(wave).all():
        raise DataError(f"{what}: audio has non-finite samples (NaN or inf)")
    peak = float(np.abs(wave).max()) if wave.size else 0.0
    if peak > FULL_SCALE_LIMIT:
        raise DataError(f"{what}: audio reaches {peak:.3g}, but float audio is full scale (-1..1); integer PCM "
                        "passed as floats? divide int16 samples by 32768")


def check_model_config(config: dict, source: str) -> None:
    """A model's config.json (a torch model directory's or an export's) checked before it is used: the names it
    picks (mode, poolings, head), its sizes and its `preprocessing`; a DataError names `source` and the field."""
    for key, allowed in (("mode", MODES), ("text_pooling", TEXT_POOLINGS), ("audio_pooling", AUDIO_POOLINGS),
                         ("fusion_head", FUSION_HEADS)):
        if config.get(key) not in allowed:
            raise DataError(f"{source}: {key} must be one of {list(allowed)}, got {config.get(key)!r:.60}")
    for key, most in (("audio_segments", MAX_CONTEXT + 1), ("last_k", 10_000)):
        value = config.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= most:
            raise DataError(f"{source}: {key} must be a whole number from 1 to {most}, got {value!r:.60}")
    if not isinstance(config.get("use_trp"), bool):
        raise DataError(f"{source}: use_trp must be true or false, got {config.get('use_trp')!r:.60}")
    max_positions = None
    if config["mode"] != "audio":
        text_config = config.get("text_config")
        # GPT-2 names it n_positions, BERT max_position_embeddings
        max_positions = text_config.get("n_positions", text_config.get("max_position_embeddings")) \
            if isinstance(text_config, dict) else None
        if not isinstance(max_positions, int) or isinstance(max_positions, bool) or max_positions < 1:
            raise DataError(f"{source}: text_config must give the text encoder's positions (n_positions or "
                            f"max_position_embeddings) as a whole number, got {max_positions!r:.60}")
    check_preprocessing(config.get("preprocessing"), source, max_positions)


class InputPreparer:
    def __init__(self, prep: dict, uses_audio: bool, audio_segments: int):
        self.prep, self.uses_audio, self.audio_segments = prep, uses_audio, audio_segments
        # previous utterances the model reads: text context and audio segments beside the current one
        self.context_length = max(prep["n_previous"], audio_segments - 1)
        self.reads_context_audio = uses_audio and audio_segments > 1  # else a history needs no audio

    def words(self, text, what: str) -> str:
        """The normalised words of one utterance; a DataError naming `what` when there are none or they are not
        Unicode."""
        if isinstance(text, str) and not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise DataError(f"{what}: text is not valid Unicode ({text[exc.start]!r} at character {exc.start}: "
                                "bytes that are not UTF-8?)") from None
        normalized = normalize(text, self.prep["punctuation"]) if isinstance(text, str) else ""
        if not normalized:
            raise DataError(f"{what}: empty text (got {text!r:.60}); every utterance needs its words")
        return normalized

    def _audio(self, audio, sample_rate: int | None, what: str, speaker: int) -> np.ndarray:
        """Mono at the training rate, the end kept; with `channels: speaker` a stereo input gives the
        speaker's own channel, as in training."""
        rate = self.prep["sample_rate"]
        channel = speaker if self.prep["channels"] == "speaker" else None
        if isinstance(audio, (str, Path)):
            wave = load_mono(audio, rate, channel)
        elif isinstance(audio, np.ndarray):
            if sample_rate is None:
                raise DataError(f"{what}: an audio array needs its sample_rate")
            if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate < 1000:
                raise DataError(f"{what}: sample_rate must be a whole number of samples per second (>= 1000), "
                                f"got {sample_rate!r}")
            wave = resample(select_channel(audio_array(audio, what), channel if audio.ndim == 2 else None),
                            sample_rate, rate)
        else:
            raise DataError(f"{what}: audio must be a file path or a numpy array, got {type(audio).__name__}")
        check_full_scale(wave, what)
        if len(wave) < int(MIN_SECONDS * rate):
            raise DataError(f"{what}: audio is shorter than 50 ms ({len(wave)} samples at {rate} Hz)")
        return segment_policy(wave, rate, self.prep["max_seconds"], self.prep["trim_vad_threshold"])[0]

    def prepare(self, text: str, audio, speaker: int = 0, context: list[dict] | None = None,
                sample_rate: int | None = None) -> tuple[str, list]:
        """(context string, [current, previous, ...] waveforms or None) for one utterance.

        As in training, the text context holds the last `n_previous` utterances and the audio the current
        segment and its `audio_segments - 1` predecessors.
        """
        n_text, n_audio = self.prep["n_previous"] + 1, self.audio_segments
        context = list(context or [])[-self.context_length:] if self.context_length else []
        utterances = [*context, {"text": text, "speaker": speaker, "audio": audio, "sample_rate": sample_rate}]
        names = [f"context utterance {k + 1}" for k in range(len(context))] + ["current utterance"]
        for u, what in zip(utterances, names, strict=True):
            speaker_id = u.get("speaker")
            whole = isinstance(speaker_id, (int, np.integer)) and not isinstance(speaker_id, bool)
            if not whole or speaker_id not in (0, 1):
                raise DataError(f"{what}: speaker must be 0 or 1, got {type(speaker_id).__name__} {speaker_id!r:.40}")
            if "shift_after" in u:
                raise DataError(f"{what}: shift_after is not read: a turn shift is where the speaker changes, as "
                                "a live system observes it (labels never reach an input)")
        texts = [self.words(u.get("text"), what) for u, what in zip(utterances, names, strict=True)]
        speakers = [u["speaker"] for u in utterances]
        text = context_string(texts[-n_text:], speakers[-n_text:], self.prep["trim_overlap"])
        if self.uses_audio and audio is None:
            raise DataError("current utterance: this model needs its audio")
        # current first, then its predecessors; audio the model does not read is still checked, never ignored
        waves = [None if u.get("audio") is None else
                 self._audio(u["audio"], u.get("sample_rate", sample_rate), what, u["speaker"])
                 for u, what in list(zip(utterances, names, strict=True))[::-1]]
        if not self.uses_audio:
            return text, []
        return text, waves[:n_audio] + [None] * (n_audio - len(waves))


class Remembered:
    """`function` of a waveform, remembered for the last `size` waveforms (by content): in a conversation each
    context utterance was the current one before, so its audio is encoded once."""

    def __init__(self, function, size: int = 64):
        self.function, self.size = function, size
        self._memory: OrderedDict[bytes, object] = OrderedDict()

    def __len__(self) -> int:
        return len(self._memory)

    def clear(self) -> None:
        self._memory.clear()

    def __call__(self, wave: np.ndarray):
        key = hashlib.blake2b(np.ascontiguousarray(wave, dtype=np.float32).tobytes(), digest_size=16).digest()
        if key not in self._memory:
            self._memory[key] = self.function(wave)
            if len(self._memory) > self.size:
                self._memory.popitem(last=False)
        self._memory.move_to_end(key)
        return self._memory[key]


def class_probabilities(probs: np.ndarray) -> dict[str, float]:
    """One prediction as both backends return it: {keep, shift, backchannel: probability}; a non-finite value is
    an error, never NaN in the output."""
    if not np.isfinite(probs).all():
        raise DataError(f"the model gave non-finite probabilities ({probs}); its weights may be broken")
    return {name: float(probs[k]) for k, name in LABEL_NAMES.items()}

"""The inputs of one prediction, prepared exactly as in training (a model's `preprocessing` config): the text
context (the same `text.context_string` as the tokenize stage) and each audio segment (the same
`segment.segment_policy` as the segment stage). Shared by the PyTorch predictor and the ONNX backend, and free of
torch, so a deployment needs neither.

Documented defaults: no context means the utterance is treated like the first of a conversation; a context
utterance without audio has no audio segment (as at the start of a conversation). A context utterance may say
`shift_after` (whether the other speaker took the turn after it, as the training labels say); without it,
whether the next utterance is the other speaker's. Audio is a file path or an array (1-D, or 2-D with channels
last) with its sample rate.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from pathlib import Path

import numpy as np

from turnfusion.audio import load_mono, resample, select_channel
from turnfusion.schema import LABEL_NAMES, DataError
from turnfusion.segment import segment_policy
from turnfusion.text import context_string, normalize


class InputPreparer:
    def __init__(self, prep: dict, uses_audio: bool, audio_segments: int):
        self.prep, self.uses_audio, self.audio_segments = prep, uses_audio, audio_segments
        # previous utterances the model reads: text context and audio segments beside the current one
        self.context_length = max(prep["n_previous"], audio_segments - 1)

    def _text(self, text, what: str) -> str:
        if not isinstance(text, str) or not normalize(text, self.prep["punctuation"]):
            raise DataError(f"{what}: empty text (got {text!r}); every utterance needs its words")
        return normalize(text, self.prep["punctuation"])

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
            wave = resample(select_channel(audio.astype(np.float32), channel if audio.ndim == 2 else None),
                            sample_rate, rate)
        else:
            raise DataError(f"{what}: audio must be a file path or a numpy array, got {type(audio).__name__}")
        if not np.isfinite(wave).all():
            raise DataError(f"{what}: audio has non-finite samples (NaN or inf)")
        if len(wave) < int(0.05 * rate):
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
        texts = [self._text(u.get("text"), what) for u, what in zip(utterances, names, strict=True)]
        speakers = [u["speaker"] for u in utterances]
        # what followed each context utterance: as given, else whether the next one is the other speaker's
        shifts = [bool(u.get("shift_after", speakers[k + 1] != u["speaker"] if k + 1 < len(utterances) else False))
                  for k, u in enumerate(utterances)]
        text = context_string(texts[-n_text:], speakers[-n_text:], shifts[-n_text:],
                              self.prep.get("trim_overlap", False))
        waves = []
        if not self.uses_audio:  # unused, but a bad file is still an error, never ignored
            for u, what in zip(utterances, names, strict=True):
                if u.get("audio") is not None:
                    self._audio(u["audio"], u.get("sample_rate", sample_rate), what, u["speaker"])
        else:
            if audio is None:
                raise DataError("current utterance: this model needs its audio")
            # current first, then its predecessors
            for u, what in list(zip(utterances, names, strict=True))[::-1][:n_audio]:
                waves.append(None if u.get("audio") is None else
                             self._audio(u["audio"], u.get("sample_rate", sample_rate), what, u["speaker"]))
            waves += [None] * (n_audio - len(waves))
        return text, waves


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

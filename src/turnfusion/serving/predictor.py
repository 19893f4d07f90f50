# SPDX-License-Identifier: Apache-2.0
"""What the PyTorch predictor and the ONNX backend share beyond the input policy (`processing`): the check of a
model folder's config.json, the memory of encoded audio, and the probabilities they return. Torch-free."""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import numpy as np

from turnfusion.choices import (
    AUDIO_POOLINGS,
    FUSION_HEADS,
    LABEL_NAMES,
    MODEL_BOUNDS,
    MODES,
    TEXT_POOLINGS,
    encoder_size_problem,
    text_input_problem,
)
from turnfusion.errors import DataError


def check_model_config(config: dict, source: str) -> int | None:
    """A model's config.json (a torch model directory's or an export's) checked before it is used: the names it
    picks (mode, poolings, head) and its sizes; a DataError names `source` and the field. Returns the text
    encoder's positions (None for an audio model), the bound of the processor's `max_length`."""
    for key, allowed in (("mode", MODES), ("text_pooling", TEXT_POOLINGS), ("audio_pooling", AUDIO_POOLINGS),
                         ("fusion_head", FUSION_HEADS)):
        if config.get(key) not in allowed:
            raise DataError(f"{source}: {key} must be one of {list(allowed)}, got {config.get(key)!r:.60}")
    for key, bound in MODEL_BOUNDS.items():  # the bounds of the params check too (`choices`)
        if not bound.holds(config.get(key)):
            raise DataError(f"{source}: {key} must be {bound.rule()}, got {config.get(key)!r:.60}")
    if not isinstance(config.get("use_trp"), bool):
        raise DataError(f"{source}: use_trp must be true or false, got {config.get('use_trp')!r:.60}")
    encoders = {"text": ["text_config"], "audio": ["audio_config"], "fusion": ["text_config", "audio_config"]}
    for key in encoders[config["mode"]]:
        problem = encoder_size_problem(config.get(key))
        if problem:
            raise DataError(f"{source}: {key}: {problem}")
    max_positions = None
    if config["mode"] != "audio":
        text_config = config.get("text_config")
        # GPT-2 names it n_positions, BERT max_position_embeddings
        max_positions = text_config.get("n_positions", text_config.get("max_position_embeddings")) \
            if isinstance(text_config, dict) else None
        if not isinstance(max_positions, int) or isinstance(max_positions, bool) or max_positions < 1:
            raise DataError(f"{source}: text_config must give the text encoder's positions (n_positions or "
                            f"max_position_embeddings) as a whole number, got {max_positions!r:.60}")
        problem = text_input_problem(config.get("text_input", "context"), config.get("text_span", "all"),
                                     text_config)
        if problem:
            raise DataError(f"{source}: {problem}")
    return max_positions


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
        key = self.key(wave)
        if key not in self._memory:
            self.remember(wave, self.function(wave))
        self._memory.move_to_end(key)
        return self._memory[key]

    def remember(self, wave: np.ndarray, value) -> None:
        """`value` is `function(wave)`, computed elsewhere (a live session's front end in pieces)."""
        key = self.key(wave)
        self._memory[key] = value
        self._memory.move_to_end(key)
        if len(self._memory) > self.size:
            self._memory.popitem(last=False)

    @staticmethod
    def key(wave: np.ndarray) -> bytes:
        return hashlib.blake2b(np.ascontiguousarray(wave, dtype=np.float32).tobytes(), digest_size=16).digest()


class Predictor:
    """What both backends' predictors are (`predict.TurnPredictor` on PyTorch, `onnx_backend.OnnxTurnModel` on
    onnxruntime), written once: the input policy (`processor`), one prediction, a whole CSV. A backend sets
    `processor` and implements `predict_prepared` (class probabilities (n, 3) of prepared inputs); `TurnSession`
    serves either."""

    processor = None  # processing.TurnFusionProcessor of the model folder

    @property
    def context_length(self) -> int:
        """Previous utterances the model reads (text context or audio segments)."""
        return self.processor.context_length

    def predict_prepared(self, contexts: list[str], waves: list[list], trp: list[float] | None = None) -> np.ndarray:
        raise NotImplementedError

    def prepare(self, text: str, audio, speaker: int = 0, context: list[dict] | None = None,
                sample_rate: int | None = None) -> tuple[str, list]:
        """(context string, [current, previous, ...] waveforms or None): see `TurnFusionProcessor.prepare`."""
        return self.processor.prepare(text, audio, speaker, context, sample_rate)

    def predict(self, text: str, audio=None, speaker: int = 0, context: list[dict] | None = None,
                sample_rate: int | None = None, trp: float | None = None) -> dict[str, float]:
        """Probabilities of keep / shift / backchannel after this utterance."""
        return self.probabilities(*self.prepare(text, audio, speaker, context, sample_rate), trp)

    def probabilities(self, context: str, waves: list, trp: float | None = None) -> dict[str, float]:
        """{keep, shift, backchannel} of one prepared input."""
        trp = checked_trp(trp)
        return class_probabilities(self.predict_prepared([context], [waves], None if trp is None else [trp])[0])

    def predict_csv(self, csv, audio_dir, batch_size: int = 32):
        """Predictions for every row of an MM-F2F CSV: see `batch.predict_csv` (pandas, imported here)."""
        from turnfusion.serving.batch import predict_csv

        return predict_csv(self, csv, audio_dir, batch_size)


def checked_trp(trp) -> float | None:
    """The teacher's TRP given with one utterance: None, or a probability (a DataError otherwise)."""
    if trp is None:
        return None
    if not isinstance(trp, (int, float, np.integer, np.floating)) or isinstance(trp, bool) \
            or not 0 <= trp <= 1:
        raise DataError(f"trp must be a probability from 0 to 1 (the teacher's TRP), got {trp!r:.40}")
    return float(trp)


def class_probabilities(probs: np.ndarray) -> dict[str, float]:
    """One prediction as both backends return it: {keep, shift, backchannel: probability}; a non-finite value is
    an error, never NaN in the output."""
    if not np.isfinite(probs).all():
        raise DataError(f"the model gave non-finite probabilities ({probs}); its weights may be broken")
    return {name: float(probs[k]) for k, name in LABEL_NAMES.items()}

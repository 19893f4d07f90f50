"""Prediction with a trained model directory: one utterance with its context, or a whole MM-F2F CSV.

    from turnfusion.predict import TurnPredictor
    predictor = TurnPredictor("models/fusion")
    predictor.predict("do you know the museum", "current.wav",
                      context=[{"text": "i went there last week", "speaker": 0, "audio": "prev.wav"}], speaker=1)
    -> {"keep": 0.05, "shift": 0.91, "backchannel": 0.04}

Inputs are prepared exactly as in training (the model's `preprocessing` config) by `inputs.InputPreparer`,
which documents the defaults; `onnx_backend` runs an exported model on the same inputs without torch.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from turnfusion.batch import predict_csv
from turnfusion.errors import DataError, one_line
from turnfusion.inputs import InputPreparer, Remembered, check_model_config, class_probabilities
from turnfusion.tokenize import encode_contexts, pad_right


def load_model(model_dir: str | Path):
    """A trained TurnFusionModel directory, checked before it is used: its config.json (`inputs.check_model_config`)
    and safetensors weights only (never a pickled `.bin`), loaded strictly: weights that are missing, unexpected
    or of other sizes (which from_pretrained would fill with random values) are a DataError naming the file."""
    from turnfusion.models import TurnFusionModel

    model_dir = Path(model_dir)
    config_path, weights = model_dir / "config.json", model_dir / "model.safetensors"
    if not config_path.exists():
        raise DataError(f"{model_dir}: not a trained model directory (no config.json)")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{config_path}: not a model config ({one_line(exc)})") from None
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if model_type != TurnFusionModel.config_class.model_type:
        raise DataError(f"{model_dir}: a {model_type!r} model, not a turnfusion model (models/text, models/audio "
                        "or models/fusion)")
    check_model_config(config, str(config_path))
    if not weights.is_file():
        raise DataError(f"{weights}: missing; a trained model directory has its weights as safetensors")
    try:
        model, info = TurnFusionModel.from_pretrained(str(model_dir), output_loading_info=True, use_safetensors=True)
    except Exception as exc:  # safetensors, torch and transformers raise many types for a torn or foreign file
        raise DataError(f"{weights}: cannot be loaded as the model config.json describes "
                        f"({type(exc).__name__}: {one_line(exc, 200)})") from None
    for kind in ("missing_keys", "unexpected_keys", "mismatched_keys"):
        if info.get(kind):
            keys = sorted(str(k) for k in info[kind])
            raise DataError(f"{model_dir}: {len(keys)} {kind.replace('_', ' ')} in the weights, e.g. {keys[0]}; "
                            "the directory is incomplete or of another model")
    return model


def saved_tokenizer(model_dir: Path):
    """The tokenizer saved beside a trained model (tokenizer.json), or a DataError naming the file. Not
    `tokenize.load_tokenizer`, which prepares a pretrained one for training (adds our special tokens)."""
    from transformers import PreTrainedTokenizerFast

    path = model_dir / "tokenizer.json"
    if not path.is_file():
        raise DataError(f"{path}: missing; a text model directory has its tokenizer")
    try:
        return PreTrainedTokenizerFast.from_pretrained(str(model_dir))
    except Exception as exc:  # tokenizers raises a bare Exception for a malformed file
        raise DataError(f"{path}: not a tokenizer ({one_line(exc)})") from None


class TurnPredictor:
    def __init__(self, model_dir: str | Path, device: str = "cpu"):
        model_dir = Path(model_dir)
        self.model = load_model(model_dir).to(device).eval()
        self.tokenizer = saved_tokenizer(model_dir) if self.model.config.uses_text else None
        self.prep = self.model.config.preprocessing
        self.inputs = InputPreparer(self.prep, self.model.config.uses_audio, self.model.config.audio_segments)
        self.context_length = self.inputs.context_length
        self.device = torch.device(device)
        self.audio_memory = Remembered(self.model.encode_segment)

    def prepare(self, text: str, audio, speaker: int = 0, context: list[dict] | None = None,
                sample_rate: int | None = None) -> tuple[str, list]:
        """(context string, [current, previous, ...] waveforms or None): see `inputs.InputPreparer.prepare`."""
        return self.inputs.prepare(text, audio, speaker, context, sample_rate)

    # --- prediction -----------------------------------------------------------------------------
    @torch.no_grad()
    def predict_prepared(self, contexts: list[str], waves: list[list], trp: list[float] | None = None) -> np.ndarray:
        """Class probabilities (n, 3) for prepared inputs."""
        if self.model.config.use_trp and trp is None:
            raise DataError("this model takes the teacher's TRP as an input: pass trp")
        batch = {"waves": waves, "trp": torch.tensor(trp if trp is not None else [0.0] * len(contexts))}
        if self.tokenizer is not None:
            ids, mask = pad_right(encode_contexts(self.tokenizer, contexts, self.prep["max_length"])[0], 0)
            batch.update(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask))
        logits = self.model.batch_logits(batch, encode_segment=self.audio_memory)
        return torch.softmax(logits.float(), dim=-1).cpu().numpy()

    def predict(self, text: str, audio=None, speaker: int = 0, context: list[dict] | None = None,
                sample_rate: int | None = None, trp: float | None = None) -> dict[str, float]:
        """Probabilities of keep / shift / backchannel after this utterance."""
        ctx, waves = self.prepare(text, audio, speaker, context, sample_rate)
        return class_probabilities(self.predict_prepared([ctx], [waves], None if trp is None else [trp])[0])

    def predict_csv(self, csv: str | Path, audio_dir: str | Path, batch_size: int = 32) -> pd.DataFrame:
        """Predictions for every row of an MM-F2F CSV: see `batch.predict_csv`."""
        return predict_csv(self, csv, audio_dir, batch_size)

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
from turnfusion.inputs import InputPreparer, Remembered, class_probabilities
from turnfusion.schema import DataError
from turnfusion.tokenize import encode_contexts, pad_right


def load_model(model_dir: str | Path):
    """A trained TurnFusionModel directory, loaded strictly: another model type, or weights that are missing
    or unexpected (which from_pretrained would fill with random values), are a DataError."""
    from turnfusion.models import TurnFusionModel

    model_dir = Path(model_dir)
    config = model_dir / "config.json"
    if not config.exists():
        raise DataError(f"{model_dir}: not a trained model directory (no config.json)")
    try:
        model_type = json.loads(config.read_text()).get("model_type")
    except (json.JSONDecodeError, AttributeError) as exc:
        raise DataError(f"{config}: not a model config ({exc})") from None
    if model_type != TurnFusionModel.config_class.model_type:
        raise DataError(f"{model_dir}: a {model_type!r} model, not a turnfusion model (models/text, models/audio "
                        "or models/fusion)")
    model, info = TurnFusionModel.from_pretrained(str(model_dir), output_loading_info=True)
    for kind in ("missing_keys", "unexpected_keys", "mismatched_keys"):
        if info.get(kind):
            keys = sorted(str(k) for k in info[kind])
            raise DataError(f"{model_dir}: {len(keys)} {kind.replace('_', ' ')} in the weights, e.g. {keys[0]}; "
                            "the directory is incomplete or of another model")
    return model


class TurnPredictor:
    def __init__(self, model_dir: str | Path, device: str = "cpu"):
        from transformers import AutoTokenizer

        model_dir = Path(model_dir)
        self.model = load_model(model_dir).to(device).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
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
        ids, mask = pad_right(encode_contexts(self.tokenizer, contexts, self.prep["max_length"])[0], 0)
        batch = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask), "waves": waves,
                 "trp": torch.tensor(trp if trp is not None else [0.0] * len(contexts))}
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

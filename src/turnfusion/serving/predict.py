"""Prediction with a trained model directory: one utterance with its context, or a whole MM-F2F CSV.

    from turnfusion.serving.predict import TurnPredictor
    predictor = TurnPredictor("models/fusion")
    predictor.predict("do you know the museum", "current.wav",
                      context=[{"text": "i went there last week", "speaker": 0, "audio": "prev.wav"}], speaker=1)
    -> {"keep": 0.05, "shift": 0.91, "backchannel": 0.04}

Inputs are prepared exactly as in training by the model folder's processor (`processing.TurnFusionProcessor`,
its preprocessor_config.json), which documents the defaults; `onnx_backend` runs an exported model on the same
inputs without torch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from turnfusion.errors import DataError, one_line
from turnfusion.json_files import json_object
from turnfusion.serving.predictor import Predictor, Remembered, check_model_config
from turnfusion.serving.processing import TurnFusionProcessor


def load_model(model_dir: str | Path):
    """A trained TurnFusionModel directory, checked before it is used: its config.json
    (`serving.predictor.check_model_config`) and processor (`processing.TurnFusionProcessor.from_pretrained`),
    and safetensors weights only (never a pickled `.bin`), loaded strictly: weights that are missing, unexpected
    or of other sizes (which from_pretrained would fill with random values) are a DataError naming the file."""
    from turnfusion.models import TurnFusionModel

    model_dir = Path(model_dir)
    config_path, weights = model_dir / "config.json", model_dir / "model.safetensors"
    if not config_path.exists():
        raise DataError(f"{model_dir}: not a trained model directory (no config.json)")
    config = json_object(config_path)
    model_type = config.get("model_type")
    if model_type != TurnFusionModel.config_class.model_type:
        raise DataError(f"{model_dir}: a {model_type!r} model, not a turnfusion model (models/text, models/audio "
                        "or models/fusion)")
    processor = TurnFusionProcessor.from_pretrained(model_dir, config, check_model_config(config, str(config_path)))
    if not weights.is_file():
        raise DataError(f"{weights}: missing; a trained model directory has its weights as safetensors")
    check_weight_types(weights)
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
    return model, processor


FLOAT_TYPES = ("F16", "BF16", "F32", "F64")  # what a trained model saves; integer weights would be cast silently


def check_weight_types(weights: Path) -> None:
    """Every tensor of a safetensors file is floating point (read from its header, nothing loaded)."""
    from safetensors import safe_open

    try:
        with safe_open(str(weights), framework="pt") as f:
            types = {name: f.get_slice(name).get_dtype() for name in f.keys()}
    except Exception as exc:  # safetensors raises its own SafetensorError for a torn header
        raise DataError(f"{weights}: not a safetensors file ({one_line(exc)})") from None
    odd = sorted(name for name, kind in types.items() if kind not in FLOAT_TYPES)
    if odd:
        raise DataError(f"{weights}: {len(odd)} tensor(s) not floating point, e.g. {odd[0]} ({types[odd[0]]}); "
                        "the weights of a trained model are F32 / F16 / BF16")


class TurnPredictor(Predictor):
    """A trained model directory on PyTorch (`serving.predictor.Predictor`: prepare, predict, predict_csv)."""

    def __init__(self, model_dir: str | Path, device: str = "cpu"):
        model, self.processor = load_model(Path(model_dir))
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.audio_memory = Remembered(self.model.encode_segment)

    @torch.no_grad()
    def predict_prepared(self, contexts: list[str], waves: list[list], trp: list[float] | None = None) -> np.ndarray:
        """Class probabilities (n, 3) for prepared inputs."""
        if self.model.config.use_trp and trp is None:
            raise DataError("this model takes the teacher's TRP as an input: pass trp")
        batch = {"waves": waves, "trp": torch.tensor(trp if trp is not None else [0.0] * len(contexts))}
        if self.model.config.uses_text:
            ids, mask = self.processor.text_batch(contexts)
            batch.update(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask))
        logits = self.model.batch_logits(batch, encode_segment=self.audio_memory)
        return torch.softmax(logits.float(), dim=-1).cpu().numpy()

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

from turnfusion.audio import read_resampled, recording_path
from turnfusion.inputs import InputPreparer, Remembered
from turnfusion.schema import LABEL_NAMES, SHIFT, DataError, conversation_order, has_video_id, read_utterances
from turnfusion.segment import cut_row
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
        probs = self.predict_prepared([ctx], [waves], None if trp is None else [trp])[0]
        if not np.isfinite(probs).all():
            raise DataError(f"the model gave non-finite probabilities ({probs}); its weights may be broken")
        return {name: float(probs[k]) for k, name in LABEL_NAMES.items()}

    def predict_csv(self, csv: str | Path, audio_dir: str | Path, batch_size: int = 32) -> pd.DataFrame:
        """Predictions for every row of an MM-F2F CSV whose recordings are `audio_dir/<video_id>.flac` or `.wav`.

        Every input row is in the output: rows that cannot be used (no video_id, bad speaker, empty text,
        missing recording, bad timestamps, non-finite audio) with empty probabilities and the reason in
        `skipped`.
        """
        if not Path(audio_dir).is_dir():
            raise DataError(f"{audio_dir}: audio folder not found")
        table = conversation_order(read_utterances(csv))
        if table.empty:
            raise DataError(f"{csv}: no utterance rows (only a header)")
        rate = self.prep["sample_rate"]
        rows, prepared = [], []
        named = has_video_id(table)
        rows += [{"sentence_id": r.sentence_id, "video_id": "", "label": r.label, "skipped": "empty_video_id"}
                 for r in table[~named].itertuples(index=False)]
        for video_id, conv in table[named].groupby("video_id", sort=True):
            try:
                recording, problem_all = read_resampled(recording_path(audio_dir, video_id), rate), ""
            except DataError as exc:
                recording, problem_all = None, f"recording: {exc}"
            history: list[dict] = []
            for row in conv.itertuples(index=False):
                wave, problem = (None, problem_all) if problem_all else cut_row(recording, rate, row,
                                                                                self.prep["channels"])
                rows.append({"sentence_id": row.sentence_id, "video_id": video_id, "label": row.label,
                             "skipped": problem})
                if problem:
                    continue
                prepared.append((len(rows) - 1, *self.prepare(row.text, wave, int(row.speaker), history,
                                                              sample_rate=rate)))
                history.append({"text": row.text, "speaker": int(row.speaker), "audio": wave, "sample_rate": rate,
                                "shift_after": row.label == SHIFT})
        result = pd.DataFrame(rows)
        for name in LABEL_NAMES.values():
            result[f"p_{name}"] = np.nan
        for start in range(0, len(prepared), batch_size):
            chunk = prepared[start: start + batch_size]
            probs = self.predict_prepared([c[1] for c in chunk], [c[2] for c in chunk])
            for (row, _, _), p in zip(chunk, probs, strict=True):
                result.loc[row, [f"p_{n}" for n in LABEL_NAMES.values()]] = p
        done = result.skipped == ""
        result["prediction"] = pd.Series(pd.NA, index=result.index, dtype="Int64")
        result.loc[done, "prediction"] = result.loc[done, [f"p_{n}" for n in LABEL_NAMES.values()]].to_numpy().argmax(1)
        return result

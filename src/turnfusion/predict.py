"""Prediction with a trained model directory: one utterance with its context, or a whole MM-F2F CSV.

    from turnfusion.predict import TurnPredictor
    predictor = TurnPredictor("models/fusion")
    predictor.predict("do you know the museum", "current.wav",
                      context=[{"text": "i went there last week", "speaker": 0, "audio": "prev.wav"}], speaker=1)
    -> {"keep": 0.05, "shift": 0.91, "backchannel": 0.04}

Inputs are prepared exactly as in training (the model's `preprocessing` config): text normalised with
the same punctuation policy and left-truncated; audio mono, resampled to the training rate, the end
kept. Audio is a file path or a 1-D array with its sample rate. Documented defaults: no context means
the utterance is treated like the first of a conversation; a context utterance without audio has no
audio segment (as at the start of a conversation). A context utterance may say `shift_after` (whether the
other speaker took the turn after it, as the training labels say); without it, whether the next utterance
is the other speaker's.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from turnfusion.audio import load_mono, read_resampled, recording_path, resample, select_channel
from turnfusion.schema import LABEL_NAMES, SHIFT, DataError, conversation_order, has_video_id, read_utterances
from turnfusion.segment import cut_row, segment_policy
from turnfusion.text import context_string, normalize
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
        # previous utterances the model reads: text context and audio segments beside the current one
        self.context_length = max(self.prep["n_previous"], self.model.config.audio_segments - 1)
        self.device = torch.device(device)
        self._audio_cache: OrderedDict[bytes, torch.Tensor] = OrderedDict()

    AUDIO_CACHE_SIZE = 64

    def _encode_segment(self, wave: np.ndarray) -> torch.Tensor:
        """The model's own encoding of one segment, remembered: in a live conversation each context
        utterance was the current one before, so it is encoded once."""
        key = hashlib.blake2b(np.ascontiguousarray(wave).tobytes(), digest_size=16).digest()
        if key not in self._audio_cache:
            self._audio_cache[key] = self.model.encode_segment(wave)
            if len(self._audio_cache) > self.AUDIO_CACHE_SIZE:
                self._audio_cache.popitem(last=False)
        self._audio_cache.move_to_end(key)
        return self._audio_cache[key]

    # --- input preparation -------------------------------------------------------------------
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
        n_text, n_audio = self.prep["n_previous"] + 1, self.model.config.audio_segments
        context = list(context or [])[-self.context_length:] if self.context_length else []
        utterances = [*context, {"text": text, "speaker": speaker, "audio": audio, "sample_rate": sample_rate}]
        names = [f"context utterance {k + 1}" for k in range(len(context))] + ["current utterance"]
        for u, what in zip(utterances, names, strict=True):
            if u.get("speaker") not in (0, 1):
                raise DataError(f"{what}: speaker must be 0 or 1, got {u.get('speaker')!r}")
        texts = [self._text(u.get("text"), what) for u, what in zip(utterances, names, strict=True)]
        speakers = [u["speaker"] for u in utterances]
        # what followed each context utterance: as given, else whether the next one is the other speaker's
        shifts = [bool(u.get("shift_after", speakers[k + 1] != u["speaker"] if k + 1 < len(utterances) else False))
                  for k, u in enumerate(utterances)]
        text = context_string(texts[-n_text:], speakers[-n_text:], shifts[-n_text:],
                              self.prep.get("trim_overlap", False))
        waves = []
        if not self.model.config.uses_audio:  # unused, but a bad file is still an error, never ignored
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

    # --- prediction -----------------------------------------------------------------------------
    @torch.no_grad()
    def predict_prepared(self, contexts: list[str], waves: list[list], trp: list[float] | None = None) -> np.ndarray:
        """Class probabilities (n, 3) for prepared inputs."""
        if self.model.config.use_trp and trp is None:
            raise DataError("this model takes the teacher's TRP as an input: pass trp")
        ids, mask = pad_right(encode_contexts(self.tokenizer, contexts, self.prep["max_length"])[0], 0)
        batch = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask), "waves": waves,
                 "trp": torch.tensor(trp if trp is not None else [0.0] * len(contexts))}
        logits = self.model.batch_logits(batch, encode_segment=self._encode_segment)
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

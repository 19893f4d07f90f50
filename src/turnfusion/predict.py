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
audio segment (as at the start of a conversation).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from turnfusion.audio import load_mono, read_audio, resample, select_channel
from turnfusion.features import encode_segment
from turnfusion.schema import LABEL_NAMES, DataError, read_utterances
from turnfusion.segments import keep_end, timestamp_problem
from turnfusion.text import normalize, utterance_piece


class TurnPredictor:
    def __init__(self, model_dir: str | Path, device: str = "cpu"):
        from transformers import AutoTokenizer

        from turnfusion.models import TurnFusionModel

        model_dir = Path(model_dir)
        if not (model_dir / "config.json").exists():
            raise DataError(f"{model_dir}: not a trained model directory (no config.json)")
        self.model = TurnFusionModel.from_pretrained(str(model_dir)).to(device).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        self.prep = self.model.config.preprocessing
        self.device = torch.device(device)
        self._audio_cache: OrderedDict[bytes, torch.Tensor] = OrderedDict()

    AUDIO_CACHE_SIZE = 64

    def _encode_audio(self, waves: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """Hidden frames of each waveform, encoded alone (as in the training cache: no padding enters the
        encoder) and remembered: in a live conversation each context utterance was the current one before,
        so it is encoded once."""
        frames = []
        for wave in waves:
            key = hashlib.blake2b(np.ascontiguousarray(wave).tobytes(), digest_size=16).digest()
            if key not in self._audio_cache:
                self._audio_cache[key] = encode_segment(self.model.audio_encoder, wave)
                if len(self._audio_cache) > self.AUDIO_CACHE_SIZE:
                    self._audio_cache.popitem(last=False)
            self._audio_cache.move_to_end(key)
            frames.append(self._audio_cache[key])
        width = max(len(f) for f in frames)
        hidden = torch.zeros(len(frames), width, frames[0].shape[1], device=self.device)
        mask = torch.zeros(len(frames), width, dtype=torch.bool, device=self.device)
        for k, f in enumerate(frames):
            hidden[k, : len(f)], mask[k, : len(f)] = f, True
        return hidden, mask

    # --- input preparation -------------------------------------------------------------------
    def _text(self, text, what: str) -> str:
        if not isinstance(text, str) or not normalize(text, self.prep["punctuation"]):
            raise DataError(f"{what}: empty text (got {text!r}); every utterance needs its words")
        return normalize(text, self.prep["punctuation"])

    def _audio(self, audio, sample_rate: int | None, what: str) -> np.ndarray:
        rate = self.prep["sample_rate"]
        if isinstance(audio, (str, Path)):
            wave = load_mono(audio, rate)
        elif isinstance(audio, np.ndarray):
            if sample_rate is None:
                raise DataError(f"{what}: an audio array needs its sample_rate")
            wave = resample(select_channel(audio.astype(np.float32), None), sample_rate, rate)
        else:
            raise DataError(f"{what}: audio must be a file path or a numpy array, got {type(audio).__name__}")
        if len(wave) < int(0.05 * rate):
            raise DataError(f"{what}: audio is shorter than 50 ms ({len(wave)} samples at {rate} Hz)")
        return keep_end(wave, int(self.prep["max_seconds"] * rate))

    def prepare(self, text: str, audio, speaker: int = 0, context: list[dict] | None = None,
                sample_rate: int | None = None) -> tuple[str, list]:
        """(context string, [current, previous, ...] waveforms or None) for one utterance."""
        context = list(context or [])[-self.prep["n_previous"]:]
        utterances = [*context, {"text": text, "speaker": speaker, "audio": audio, "sample_rate": sample_rate}]
        pieces, previous = [], None
        for k, u in enumerate(utterances):
            what = "current utterance" if k == len(utterances) - 1 else f"context utterance {k + 1}"
            if u.get("speaker") not in (0, 1):
                raise DataError(f"{what}: speaker must be 0 or 1, got {u.get('speaker')!r}")
            pieces.append(utterance_piece(self._text(u.get("text"), what), u["speaker"], previous))
            previous = u["speaker"]
        waves = []
        if self.model.config.uses_audio:
            if audio is None:
                raise DataError("current utterance: this model needs its audio")
            for k, u in enumerate(reversed(utterances)):  # current first, then its predecessors
                what = "current utterance" if k == 0 else f"context utterance {len(utterances) - k}"
                waves.append(None if u.get("audio") is None else
                             self._audio(u["audio"], u.get("sample_rate", sample_rate), what))
            waves += [None] * (self.model.config.audio_segments - len(waves))
        return " ".join(pieces), waves[: self.model.config.audio_segments]

    # --- prediction -----------------------------------------------------------------------------
    @torch.no_grad()
    def predict_prepared(self, contexts: list[str], waves: list[list], trp: list[float] | None = None) -> np.ndarray:
        """Class probabilities (n, 3) for prepared inputs."""
        from turnfusion.features import encode_raw_batch

        enc = self.tokenizer(contexts, truncation=True, max_length=self.prep["max_length"], padding=True,
                             add_special_tokens=False, return_tensors="pt")
        if self.model.config.use_trp and trp is None:
            raise DataError("this model takes the teacher's TRP as an input: pass trp")
        batch = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "waves": waves,
                 "trp": torch.tensor(trp if trp is not None else [0.0] * len(contexts)),
                 "label": torch.zeros(len(contexts), dtype=torch.long)}
        inputs = encode_raw_batch(self.model, batch, self.device, encode_audio=self._encode_audio)
        logits = self.model(inputs.get("text_hidden"), inputs.get("text_mask"), inputs.get("audio_hidden"),
                            inputs.get("audio_mask"), inputs["trp"])
        return torch.softmax(logits.float(), dim=-1).cpu().numpy()

    def predict(self, text: str, audio=None, speaker: int = 0, context: list[dict] | None = None,
                sample_rate: int | None = None, trp: float | None = None) -> dict[str, float]:
        """Probabilities of keep / shift / backchannel after this utterance."""
        ctx, waves = self.prepare(text, audio, speaker, context, sample_rate)
        probs = self.predict_prepared([ctx], [waves], None if trp is None else [trp])[0]
        return {name: float(probs[k]) for k, name in LABEL_NAMES.items()}

    def predict_csv(self, csv: str | Path, audio_dir: str | Path, batch_size: int = 32) -> pd.DataFrame:
        """Predictions for every row of an MM-F2F CSV whose recordings are `audio_dir/<video_id>.wav`.

        Rows that cannot be used (missing recording, bad timestamps, empty text) are kept in the output
        with empty probabilities and the reason in `skipped`.
        """
        table = read_utterances(csv).sort_values(["video_id", "start", "sentence_id"], kind="stable")
        rate, n_prev = self.prep["sample_rate"], self.prep["n_previous"]
        rows, prepared = [], []
        for video_id, conv in table.groupby("video_id", sort=True):
            try:
                samples, native = read_audio(Path(audio_dir) / f"{video_id}.wav")
                recording = resample(select_channel(samples, None), native, rate)
                problem_all = None
            except DataError as exc:
                recording, problem_all = None, f"recording: {exc}"
            history: list[dict] = []
            for row in conv.itertuples(index=False):
                problem = problem_all or timestamp_problem(row.start, row.end, len(recording) / rate)
                if problem is None and (not isinstance(row.text, str) or not row.text.strip()):
                    problem = "empty_text"
                out = {"sentence_id": row.sentence_id, "video_id": video_id, "label": row.label, "skipped": problem or ""}
                rows.append(out)
                if problem:
                    continue
                wave = recording[int(round(row.start * rate)): int(round(row.end * rate))]
                prepared.append((len(rows) - 1, *self.prepare(row.text, wave, int(row.speaker), history[-n_prev:],
                                                              sample_rate=rate)))
                history.append({"text": row.text, "speaker": int(row.speaker), "audio": wave, "sample_rate": rate})
        result = pd.DataFrame(rows)
        for name in LABEL_NAMES.values():
            result[f"p_{name}"] = np.nan
        for start in range(0, len(prepared), batch_size):
            chunk = prepared[start: start + batch_size]
            probs = self.predict_prepared([c[1] for c in chunk], [c[2] for c in chunk])
            for (row, _, _), p in zip(chunk, probs):
                result.loc[row, [f"p_{n}" for n in LABEL_NAMES.values()]] = p
        done = result.skipped == ""
        result["prediction"] = pd.Series(pd.NA, index=result.index, dtype="Int64")
        result.loc[done, "prediction"] = result.loc[done, [f"p_{n}" for n in LABEL_NAMES.values()]].to_numpy().argmax(1)
        return result

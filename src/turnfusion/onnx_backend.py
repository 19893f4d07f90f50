"""Prediction with an exported model directory (stage `export`) on onnxruntime. It needs numpy, onnxruntime,
tokenizers and soxr (soundfile for audio files); torch and transformers are never imported.

    from turnfusion.onnx_backend import TurnSession
    session = TurnSession("models/fusion-onnx")              # int8 graphs; precision="fp32" for the others
    session.add("so i went to the market", wave, speaker=0, sample_rate=16000)
    -> {"keep": 0.81, "shift": 0.12, "backchannel": 0.07}   # after this utterance, given those before it

`OnnxTurnModel.predict` takes one utterance with its context, like `predict.TurnPredictor.predict`; inputs
are prepared by the same `inputs.InputPreparer`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from turnfusion.inputs import InputPreparer, Remembered, class_probabilities
from turnfusion.schema import DataError

MANIFEST = "manifest.json"  # an exported directory's index (written by turnfusion.export)
FORMAT = 1  # of the directory's layout: other formats are refused
PRECISIONS = ("fp32", "int8")


class OnnxTurnModel:
    """The graphs of an exported directory, and predictions from prepared inputs."""

    def __init__(self, directory: str | Path, precision: str = "int8", threads: int | None = None):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        directory = Path(directory)
        if precision not in PRECISIONS:
            raise DataError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
        manifest_path = directory / MANIFEST
        if not manifest_path.is_file():
            raise DataError(f"{directory}: not an exported turnfusion model (no {MANIFEST}; run the export stage)")
        try:
            manifest = json.loads(manifest_path.read_text())
        except json.JSONDecodeError as exc:
            raise DataError(f"{manifest_path}: not JSON ({exc})") from None
        if manifest.get("format") != FORMAT:
            raise DataError(f"{manifest_path}: format {manifest.get('format')!r}, this turnfusion reads {FORMAT}")
        for name in manifest["files"]:
            if not (directory / name).is_file():
                raise DataError(f"{directory / name}: missing (listed in {MANIFEST}); export the model again")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or min(4, os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        # three sessions run one after the other: threads that spin-wait after a run would take the cores the next
        # session needs (measured: 28 ms per utterance with spinning, see the README's benchmark)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.graphs = {name: ort.InferenceSession(str(directory / precision / f"{name}.onnx"), options,
                                                  providers=["CPUExecutionProvider"])
                       for name in manifest["graphs"]}
        self.manifest, self.precision = manifest, precision
        self.prep = manifest["preprocessing"]
        self.tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self.inputs = InputPreparer(self.prep, "audio" in self.graphs, manifest["audio_segments"])
        self.context_length = self.inputs.context_length
        self.audio_memory = Remembered(self._encode_audio)

    # --- the three graphs ------------------------------------------------------------------------
    def text_vectors(self, contexts: list[str]) -> np.ndarray:
        """Pooled text vectors (n, dim) of context strings, left-truncated as in training."""
        return self.encode_ids([e.ids for e in self.tokenizer.encode_batch(contexts, add_special_tokens=False)])

    def encode_ids(self, ids: list[list[int]]) -> np.ndarray:
        """Pooled text vectors (n, dim) of token ids (each left-truncated to the model's max_length)."""
        ids = [list(row)[-self.prep["max_length"]:] for row in ids]
        width = max(1, max(len(x) for x in ids))
        padded, mask = np.zeros((len(ids), width), np.int64), np.zeros((len(ids), width), np.int64)
        for k, row in enumerate(ids):
            padded[k, : len(row)], mask[k, : len(row)] = row, 1
        return self.graphs["text"].run(None, {"input_ids": padded, "attention_mask": mask})[0]

    def audio_vector(self, wave: np.ndarray | None) -> np.ndarray:
        """Pooled vector of one prepared segment (zeros for none, as pooling gives an empty segment); remembered,
        so a segment seen as the current utterance is not encoded again as context."""
        if wave is None:
            return np.zeros(self.manifest["graphs"]["audio"]["dim"], np.float32)
        return self.audio_memory(wave)

    def _encode_audio(self, wave: np.ndarray) -> np.ndarray:
        return self.graphs["audio"].run(None, {"waveform": np.asarray(wave, np.float32)[None]})[0][0]

    def predict_prepared(self, contexts: list[str], waves: list[list], trp: list[float] | None = None) -> np.ndarray:
        """Class probabilities (n, 3) for prepared inputs (`InputPreparer.prepare`)."""
        if self.manifest["use_trp"] and trp is None:
            raise DataError("this model takes the teacher's TRP as an input: pass trp")
        n = len(contexts)
        text = self.text_vectors(contexts) if "text" in self.graphs else None
        audio = np.stack([self.segments_vector(item) for item in waves]) if "audio" in self.graphs else None
        return self.head(text, audio, trp if trp is not None else [0.0] * n)

    def segments_vector(self, waves: list) -> np.ndarray:
        """The audio vectors of one example's segments (current first, None: no such segment), end to end."""
        return np.concatenate([self.audio_vector(w) for w in waves])

    def head(self, text: np.ndarray | None, audio: np.ndarray | None, trp) -> np.ndarray:
        """Class probabilities from pooled vectors (the modalities the model has)."""
        n = len(text if text is not None else audio)
        feed = {"text_vector": text if text is not None else np.zeros((n, 1), np.float32),
                "audio_vectors": audio if audio is not None else np.zeros((n, 1), np.float32),
                "trp": np.asarray(trp, np.float32)}
        graph = self.graphs["head"]
        return graph.run(None, {i.name: feed[i.name] for i in graph.get_inputs()})[0]

    def prepare(self, text: str, audio, speaker: int = 0, context: list[dict] | None = None,
                sample_rate: int | None = None) -> tuple[str, list]:
        """(context string, [current, previous, ...] waveforms or None): see `inputs.InputPreparer.prepare`."""
        return self.inputs.prepare(text, audio, speaker, context, sample_rate)

    def predict(self, text: str, audio=None, speaker: int = 0, context: list[dict] | None = None,
                sample_rate: int | None = None, trp: float | None = None) -> dict[str, float]:
        """Probabilities of keep / shift / backchannel after this utterance."""
        return self.probabilities(*self.prepare(text, audio, speaker, context, sample_rate), trp)

    def predict_csv(self, csv: str | Path, audio_dir: str | Path, batch_size: int = 32):
        """Predictions for every row of an MM-F2F CSV: see `batch.predict_csv`."""
        from turnfusion.batch import predict_csv

        return predict_csv(self, csv, audio_dir, batch_size)

    def probabilities(self, context: str, waves: list, trp: float | None = None) -> dict[str, float]:
        return class_probabilities(self.predict_prepared([context], [waves], None if trp is None else [trp])[0])


class TurnSession:
    """A live conversation: feed each finished utterance, get what happens next.

    The session remembers the previous utterances (as many as the model reads) and their audio encodings, so
    each call encodes only the new utterance's audio; the text context is encoded again, because it changes
    with every utterance (truncation, repeated words of overlapping windows). `shift_after` of a past
    utterance defaults to whether the next one is the other speaker's, as in `inputs.InputPreparer`.
    """

    def __init__(self, model: OnnxTurnModel | str | Path, precision: str = "int8", threads: int | None = None):
        self.model = model if isinstance(model, OnnxTurnModel) else OnnxTurnModel(model, precision, threads)
        self.history: list[dict] = []

    def add(self, text: str, audio=None, speaker: int = 0, sample_rate: int | None = None,
            trp: float | None = None) -> dict[str, float]:
        """Probabilities of keep / shift / backchannel after this utterance; then it joins the context."""
        context, waves = self.model.inputs.prepare(text, audio, speaker, self.history, sample_rate)
        probs = self.model.probabilities(context, waves, trp)
        if self.model.context_length:  # kept prepared: at the model's rate, cut as the policy says
            current = {"text": text, "speaker": speaker, "audio": waves[0] if waves else None,
                       "sample_rate": self.model.prep["sample_rate"]}
            self.history = [*self.history, current][-self.model.context_length:]
        return probs

    def reset(self) -> None:
        """A new conversation."""
        self.history = []

"""Stage `export`: a trained model directory as ONNX graphs a live system can cache between calls, fp32 and
dynamically quantised to int8, in one directory with a manifest (`turnfusion.serving.onnx_backend` runs it).

The model is cut where a live system can remember work: the text path (encoder + pooling; its context
changes with every utterance), the audio path of one segment (encoder + pooling; a segment that was the
current utterance before is a context segment later, so its vector is remembered) and the head (pooled
vectors -> probabilities). Each audio segment is encoded alone, as in training (`models.encoding`). An audio
encoder whose front end is local (layer norm: each frame from its own samples) is cut once more: the front end
(`audio_front_end`: waveform -> frames), which a live session runs in pieces while the user speaks, and the rest
(`audio`: frames -> pooled vector), run once the speech ends.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from turnfusion.data.stores import SegmentStore
from turnfusion.models import TurnFusionModel
from turnfusion.models.encoding import (
    frames_to_hidden,
    front_end_field,
    front_end_frames,
    front_end_hop,
    front_end_is_local,
)
from turnfusion.schema import LABEL_NAMES
from turnfusion.serving.onnx_backend import CONFIG, FORMAT, MANIFEST, TOKENIZER, _session, file_sha256

if TYPE_CHECKING:
    from turnfusion.config import ExportConfig


class TextPath(nn.Module):
    """Token ids -> pooled text vector (`TurnFusionModel.text_vector`: segment ids and the pooled span included)."""

    def __init__(self, model: TurnFusionModel):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model.text_vector(input_ids, attention_mask)


class AudioPath(nn.Module):
    """One segment (or several of the same length, each as if alone): waveform -> pooled vector."""

    def __init__(self, model: TurnFusionModel):
        super().__init__()
        self.encoder, self.pool = model.audio_encoder, model.audio_pool

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        frames = self.encoder(input_values=waveform).last_hidden_state  # an all-ones mask changes nothing
        return self.pool(frames, torch.ones(frames.shape[:2], dtype=torch.bool))


class AudioFrontEnd(nn.Module):
    """Waveform -> the front end's frames (a local front end: each frame from its own samples)."""

    def __init__(self, model: TurnFusionModel):
        super().__init__()
        self.encoder = model.audio_encoder

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return front_end_frames(self.encoder, waveform)


class AudioFromFrames(nn.Module):
    """The front end's frames of one segment -> pooled vector (the rest of `AudioPath`)."""

    def __init__(self, model: TurnFusionModel):
        super().__init__()
        self.encoder, self.pool = model.audio_encoder, model.audio_pool

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        hidden = frames_to_hidden(self.encoder, frames)
        return self.pool(hidden, torch.ones(hidden.shape[:2], dtype=torch.bool))


class Head(nn.Module):
    """Pooled vectors -> class probabilities: what `TurnFusionModel.forward` does after pooling (in eval mode)."""

    def __init__(self, model: TurnFusionModel):
        super().__init__()
        self.head, self.config = model.head, model.config

    def forward(self, text: torch.Tensor, audio: torch.Tensor, trp: torch.Tensor) -> torch.Tensor:
        parts = ([text] if self.config.uses_text else []) + ([audio] if self.config.uses_audio else [])
        if self.config.use_trp:
            parts[-1] = torch.cat([parts[-1], trp.unsqueeze(-1)], dim=-1)
        return torch.softmax(self.head(parts), dim=-1)


def _export(module: nn.Module, args: tuple, path: Path, inputs: list[str], output: str, axes: dict) -> None:
    torch.onnx.export(module.eval(), args, str(path), input_names=inputs, output_names=[output],
                      dynamic_axes=axes, opset_version=17, dynamo=False)


def graphs(model: TurnFusionModel, out_dir: Path) -> dict[str, dict]:
    """Write the fp32 graphs of `model` to `out_dir`; returns each graph's inputs and output."""
    model = model.eval().float()
    cfg = model.config
    written = {}
    text_dim = model.text_pool.out_dim if cfg.uses_text else 0
    audio_dim = model.audio_pool.out_dim if cfg.uses_audio else 0
    with torch.no_grad():
        if cfg.uses_text:
            ids = torch.ones(2, 5, dtype=torch.long)
            _export(TextPath(model), (ids, torch.ones_like(ids)), out_dir / "text.onnx",
                    ["input_ids", "attention_mask"], "text_vector",
                    {"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"},
                     "text_vector": {0: "batch"}})
            written["text"] = {"inputs": ["input_ids", "attention_mask"], "output": "text_vector", "dim": text_dim}
        if cfg.uses_audio and front_end_is_local(model.audio_encoder.config):
            audio_cfg = model.audio_encoder.config
            _export(AudioFrontEnd(model), (torch.randn(1, 16000),), out_dir / "audio_front_end.onnx", ["waveform"],
                    "frames", {"waveform": {0: "batch", 1: "samples"}, "frames": {0: "batch", 1: "frames"}})
            written["audio_front_end"] = {"inputs": ["waveform"], "output": "frames", "dim": audio_cfg.conv_dim[-1],
                                          "hop": front_end_hop(audio_cfg), "field": front_end_field(audio_cfg)}
            _export(AudioFromFrames(model), (torch.randn(1, 49, audio_cfg.conv_dim[-1]),), out_dir / "audio.onnx",
                    ["frames"], "audio_vector", {"frames": {0: "batch", 1: "frames"}, "audio_vector": {0: "batch"}})
            written["audio"] = {"inputs": ["frames"], "output": "audio_vector", "dim": audio_dim}
        elif cfg.uses_audio:
            _export(AudioPath(model), (torch.randn(1, 16000),), out_dir / "audio.onnx", ["waveform"],
                    "audio_vector", {"waveform": {0: "batch", 1: "samples"}, "audio_vector": {0: "batch"}})
            written["audio"] = {"inputs": ["waveform"], "output": "audio_vector", "dim": audio_dim}
        b = 2
        args = (torch.zeros(b, max(text_dim, 1)), torch.zeros(b, max(audio_dim * cfg.audio_segments, 1)),
                torch.zeros(b))
        _export(Head(model), args, out_dir / "head.onnx", ["text_vector", "audio_vectors", "trp"], "probabilities",
                {"text_vector": {0: "batch"}, "audio_vectors": {0: "batch"}, "trp": {0: "batch"},
                 "probabilities": {0: "batch"}})
        written["head"] = {"inputs": ["text_vector", "audio_vectors", "trp"], "output": "probabilities"}
    return written


def quantize(fp32: Path, int8: Path) -> None:
    """Dynamic int8 quantisation (weights int8, activations quantised on the fly; no calibration data) of the
    matrix products, for the text path and the head (and the audio path when there is no calibration data)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"])


FIRST_CONV = "/encoder/feature_extractor/conv_layers.0/conv/Conv"  # reads the waveform itself


def quantize_audio_static(fp32: Path, int8: Path, calibration: list[np.ndarray], input_name: str = "waveform") -> None:
    """Static int8 quantisation of the audio path (or one of its two graphs: `input_name` waveform or frames): the
    convolutions and matrix products with activation scales calibrated on `calibration` inputs (onnxruntime's
    advice for convolutional models: its dynamic integer convolution is slow on CPUs, its static one uses the
    integer kernels). The first convolution stays fp32: it reads the waveform, which 8 bits would coarsen, and
    costs ~1 % of the front end. Activation scales are constants: a front end quantised so gives each frame the
    same values whether it is run on the whole segment or in pieces."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Waveforms(CalibrationDataReader):
        def __init__(self):
            self.feeds = iter([{input_name: w[None].astype(np.float32)} for w in calibration])

        def get_next(self):
            return next(self.feeds, None)

    # folded first: the weights of the positional convolution (weight norm) are computed in the graph
    prepared = int8.with_suffix(".prepared.onnx")
    quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
    quantize_static(str(prepared), str(int8), Waveforms(), quant_format=QuantFormat.QOperator,
                    op_types_to_quantize=["Conv", "MatMul"], activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, nodes_to_exclude=[FIRST_CONV])
    prepared.unlink()


def calibration_waveforms(segments_dir: str | Path, cfg: ExportConfig) -> list[np.ndarray]:
    """`cfg.calibration_segments` train-split segments, drawn with `cfg.seed`: the audio path's real inputs."""
    store = SegmentStore.open(segments_dir)
    train = np.flatnonzero(store.index.split.to_numpy() == "train")
    rows = np.random.default_rng(cfg.seed).choice(train, min(cfg.calibration_segments, len(train)), replace=False)
    return [store.waveform(int(r)) for r in sorted(rows)]


def export(model_dir: Path, out_dir: Path, calibration: list[np.ndarray] | None = None) -> dict:
    """The export stage: `model_dir` (a trained TurnFusionModel with its tokenizer) as fp32 and int8 ONNX graphs,
    the tokenizer, the model config and the processor config in `out_dir`, with `manifest.json`; returns the
    manifest. With `calibration` (waveforms at the model's rate, as prepared for it) the int8 audio path is quantised
    statically, else dynamically like the others."""
    import onnxruntime as ort

    from turnfusion.serving.predict import load_model

    model_dir, out_dir = Path(model_dir), Path(out_dir)
    model, processor = load_model(model_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    (out_dir / "fp32").mkdir(parents=True)
    (out_dir / "int8").mkdir()
    written = graphs(model, out_dir / "fp32")
    for name in written:
        if name == "audio_front_end" and calibration:
            quantize_audio_static(out_dir / "fp32" / f"{name}.onnx", out_dir / "int8" / f"{name}.onnx", calibration)
        elif name == "audio" and calibration and "audio_front_end" in written:  # calibrated on the fp32 frames
            front_end = _session(out_dir / "fp32" / "audio_front_end.onnx", "audio_front_end", ort.SessionOptions())
            frames = [front_end.run(None, {"waveform": w[None].astype(np.float32)})[0][0] for w in calibration]
            quantize_audio_static(out_dir / "fp32" / "audio.onnx", out_dir / "int8" / "audio.onnx", frames, "frames")
        elif name == "audio" and calibration:
            quantize_audio_static(out_dir / "fp32" / "audio.onnx", out_dir / "int8" / "audio.onnx", calibration)
        else:
            quantize(out_dir / "fp32" / f"{name}.onnx", out_dir / "int8" / f"{name}.onnx")
    for name in (CONFIG, TOKENIZER, "tokenizer_config.json"):
        if (model_dir / name).exists():
            shutil.copy(model_dir / name, out_dir / name)
    processor.save_pretrained(out_dir)  # how inputs are made, also for a model folder saved before that file
    cfg = model.config
    files = sorted(p for p in out_dir.rglob("*") if p.is_file())
    manifest = {
        "format": FORMAT,
        "mode": cfg.mode,
        "labels": list(LABEL_NAMES.values()),
        "graphs": written,
        "precisions": ["fp32", "int8"],
        "int8_audio": f"static, calibrated on {len(calibration)} segments" if calibration and "audio" in written
        else "dynamic",
        "opset": 17,
        "files": {p.relative_to(out_dir).as_posix(): {"bytes": p.stat().st_size, "sha256": file_sha256(p)}
                  for p in files},
        # what a deployment of one precision ships: its graphs, the tokenizer and the config
        "size_mb": {prec: round(sum(p.stat().st_size for p in files if p.parent.name != other) / 2**20, 2)
                    for prec, other in (("fp32", "int8"), ("int8", "fp32"))},
    }
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest

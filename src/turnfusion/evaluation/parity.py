"""Stage `parity`: what deployment changes, on the test split. A trained model run by PyTorch on raw inputs (its
encoders run, as `predict` runs them) against its exported graphs in fp32 and int8, and the fp32 graphs on
telephone-band audio. After `export`; `evaluate` scores the models from the embedding cache."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from turnfusion.audio import telephone
from turnfusion.evaluation.evaluate import own_history, test_inputs
from turnfusion.evaluation.metrics import classification_report
from turnfusion.serving.predictor import Remembered
from turnfusion.training.datasets import RawExamples, collate_raw
from turnfusion.training.forked import run_forked
from turnfusion.training.loop import predict

if TYPE_CHECKING:
    from turnfusion.config import TrainConfig
    from turnfusion.data.stores import PackedTokens, SegmentStore
    from turnfusion.models import TurnFusionModel


def parity(model_dir: Path, onnx_dir: Path, segments: Path, tokens: Path, trp: Path, train_cfg: TrainConfig,
           workers: int = 1) -> dict:
    """The parity stage: `deployment` of the model in `model_dir` and its export in `onnx_dir`, on the test split
    of the stores (refused when the model's processor did not make them)."""
    loaded, store, token_store, table = test_inputs({"model": model_dir}, segments, tokens, trp)
    return deployment(loaded["model"][0], onnx_dir, table[table.split == "test"].reset_index(drop=True), token_store,
                      store, train_cfg, workers)


def headline(rows: dict) -> dict:
    """The figures `dvc metrics show` / `diff` compare (reports/parity/metrics.json); `rows` go to report.json."""
    figures = {"int8_max_dp": round(rows["onnx_int8"]["max_abs_dp"], 4),
               "int8_agreement": round(rows["onnx_int8"]["agreement"], 4)}
    if "telephony" in rows:
        figures["telephony_f1_drop"] = round(rows["telephony"]["macro_f1_drop"], 4)
    return figures


class TelephoneSegments:
    """A segment store whose waveforms come through the telephone band (`audio.telephone`)."""

    def __init__(self, store: SegmentStore, mu_law: bool = True):
        self.store, self.mu_law = store, mu_law

    def waveform(self, row: int) -> np.ndarray:
        return telephone(self.store.waveform(row), self.store.sample_rate, self.mu_law)


def deployment(model: TurnFusionModel, onnx_dir: Path, test: pd.DataFrame, tokens: PackedTokens,
               store: SegmentStore, train_cfg: TrainConfig, workers: int = 1) -> dict:
    """What deployment changes, on the test split: the PyTorch `model` (loaded by `serving.predict.load_model`) on
    raw inputs (its encoders run, as in `predict`) against its exported graphs in fp32 and int8, and the fp32 graphs
    on telephone-band audio. With `workers` > 1 PyTorch and the graphs run at once, in two forked processes of half
    the threads each (`forked.run_forked`)."""
    from turnfusion.serving.onnx_backend import OnnxTurnModel

    labels = test.label.to_numpy()
    test = own_history(test, model)

    def pytorch() -> np.ndarray:
        return predict(model, RawExamples(test, tokens, store), train_cfg.batch_size, torch.device("cpu"),
                       collate_raw, progress=workers <= 1, encode_segment=Remembered(model.encode_segment))

    threads = max(1, workers // 2) if workers > 1 else None

    def exported() -> dict[str, np.ndarray]:  # the graphs' sessions opened here: in the process that runs them
        graphs = {precision: OnnxTurnModel(onnx_dir, precision, threads) for precision in ("fp32", "int8")}
        probs = {precision: onnx_probabilities(graph, test, tokens, store) for precision, graph in graphs.items()}
        if model.config.uses_audio:  # the fp32 graphs: PyTorch's decisions (max_abs_dp) at a quarter of its time
            probs["telephony"] = onnx_probabilities(graphs["fp32"], test, tokens, TelephoneSegments(store))
        return probs

    reference, probs = run_forked([pytorch, exported], threads) if workers > 1 else (pytorch(), exported())
    rows = {"pytorch": classification_report(labels, reference.argmax(1), reference)}
    for precision in ("fp32", "int8"):
        report = classification_report(labels, probs[precision].argmax(1), probs[precision])
        rows[f"onnx_{precision}"] = {
            "max_abs_dp": float(np.abs(probs[precision] - reference).max()),
            "agreement": float((probs[precision].argmax(1) == reference.argmax(1)).mean()),
            "macro_f1_delta": report["macro_f1"] - rows["pytorch"]["macro_f1"], **report}
    if "telephony" in probs:
        report = classification_report(labels, probs["telephony"].argmax(1), probs["telephony"])
        rows["telephony"] = {"band": "8 kHz, mu-law", "graphs": "onnx fp32", **report,
                             "macro_f1_drop": rows["onnx_fp32"]["macro_f1"] - report["macro_f1"]}
    return rows


def onnx_probabilities(graphs, table: pd.DataFrame, tokens: PackedTokens, store: SegmentStore,
                       batch_size: int = 64) -> np.ndarray:
    """The exported graphs' probabilities for the rows of `table`, from the token and segment stores."""
    probs = []
    for start in range(0, len(table), batch_size):
        chunk = table.iloc[start: start + batch_size]
        text = graphs.encode_ids([tokens.row(int(r)) for r in chunk.token_row]) if "text" in graphs.graphs else None
        audio = (np.stack([graphs.segments_vector([store.waveform(int(r)) if r >= 0 else None for r in rows])
                           for rows in chunk.audio_rows]) if "audio" in graphs.graphs else None)
        probs.append(graphs.head(text, audio, np.nan_to_num(chunk.trp.to_numpy(dtype=float))))
    return np.concatenate(probs)

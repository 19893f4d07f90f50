import json

import numpy as np
import onnx
import pytest
import torch
from conftest import tone

from turnfusion.export import MANIFEST, export
from turnfusion.onnx_backend import OnnxTurnModel
from turnfusion.predict import TurnPredictor


@pytest.fixture(scope="module")
def exported(model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx") / "fusion-onnx"
    export(model_dir, out)
    return out


def test_the_export_is_one_directory_described_by_its_manifest(exported):
    manifest = json.loads((exported / MANIFEST).read_text())
    assert set(manifest["graphs"]) == {"text", "audio", "head"} and manifest["audio_segments"] == 3
    for precision in ("fp32", "int8"):
        for graph in manifest["graphs"]:
            onnx.checker.check_model(str(exported / precision / f"{graph}.onnx"))
    listed = set(manifest["files"])
    assert listed == {p.relative_to(exported).as_posix() for p in exported.rglob("*") if p.is_file()} - {MANIFEST}
    assert all(manifest["files"][f]["bytes"] == (exported / f).stat().st_size for f in listed)
    ops = {precision: {node.op_type for graph in ("text", "audio", "head")
                       for node in onnx.load(str(exported / precision / f"{graph}.onnx")).graph.node}
           for precision in ("fp32", "int8")}
    assert "MatMulInteger" in ops["int8"] and "MatMulInteger" not in ops["fp32"]  # the int8 graphs multiply int8
    assert "ConvInteger" not in ops["int8"]  # the audio front end's convolutions stay fp32 (see export.quantize)
    assert manifest["preprocessing"]["max_length"] == 24  # how inputs are prepared travels with the graphs


def test_graphs_take_any_batch_token_and_sample_count(exported, model_dir):
    from turnfusion.export import AudioPath, TextPath
    from turnfusion.predict import load_model

    model, graphs = load_model(model_dir).eval(), OnnxTurnModel(exported, "fp32")
    for batch, tokens in ((1, 3), (4, 17)):
        ids = [list(range(5, 5 + tokens - k)) for k in range(batch)]  # rows of different lengths
        padded = torch.zeros(batch, tokens, dtype=torch.long)
        mask = torch.zeros(batch, tokens, dtype=torch.long)
        for k, row in enumerate(ids):
            padded[k, : len(row)], mask[k, : len(row)] = torch.tensor(row), 1
        with torch.no_grad():
            want = TextPath(model)(padded, mask).numpy()
        assert np.abs(graphs.encode_ids(ids) - want).max() < 1e-4
    for seconds in (0.3, 2.7):
        wave = tone(seconds, 16000)
        with torch.no_grad():
            want = AudioPath(model)(torch.from_numpy(wave)[None]).numpy()[0]
        assert np.abs(graphs.audio_vector(wave) - want).max() < 1e-4


@pytest.mark.parametrize("precision,tolerance", [("fp32", 1e-4), ("int8", 0.1)])
def test_exported_predictions_match_pytorch(exported, model_dir, precision, tolerance):
    rng = np.random.default_rng(0)
    torch_model, graphs = TurnPredictor(model_dir), OnnxTurnModel(exported, precision)
    context = [{"text": "hello there", "speaker": 0, "audio": tone(1.1, 16000, 180), "sample_rate": 16000},
               {"text": "i went to the market", "speaker": 1, "audio": tone(0.8, 22050, 300), "sample_rate": 22050}]
    for k in range(4):
        wave = (tone(1 + k / 2, 16000, 150 + 60 * k) + rng.normal(0, 0.01, int(16000 * (1 + k / 2)))).astype(np.float32)
        want = torch_model.predict("how are you", wave, speaker=k % 2, context=context[: k % 3], sample_rate=16000)
        got = graphs.predict("how are you", wave, speaker=k % 2, context=context[: k % 3], sample_rate=16000)
        assert max(abs(got[c] - want[c]) for c in want) < tolerance


def test_the_export_stage_writes_the_sizes(model_dir, tmp_path, monkeypatch):
    import sys

    from stages.export import main

    monkeypatch.setattr(sys, "argv", ["export", "--model", str(model_dir), "--out", str(tmp_path / "e"),
                                      "--report", str(tmp_path / "export.json")])
    main()
    report = json.loads((tmp_path / "export.json").read_text())
    assert set(report) == {"size_mb_fp32", "size_mb_int8"} and min(report.values()) > 0

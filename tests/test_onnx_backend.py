import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import tone
from test_export import exported, speech_like  # noqa: F401  (exported: the fixture)

from turnfusion.schema import DataError
from turnfusion.serving.cli import main as cli
from turnfusion.serving.onnx_backend import OnnxTurnModel, TurnSession
from turnfusion.serving.predict import TurnPredictor

CONVERSATION = [("so i went to the market", 0, 1.4), ("yeah", 1, 0.4), ("and then we saw the museum", 0, 2.2),
                ("did you like it", 1, 0.9), ("it was nice you know", 0, 3.5)]


def waves():
    rng = np.random.default_rng(1)
    return [(tone(s, 16000, 140 + 50 * k) + rng.normal(0, 0.02, int(16000 * s))).astype(np.float32)
            for k, (_, _, s) in enumerate(CONVERSATION)]


def test_a_session_gives_what_batch_prediction_gives_and_encodes_each_segment_once(exported, model_dir):  # noqa: F811
    session, predictor = TurnSession(exported, "fp32"), TurnPredictor(model_dir)
    history = []
    for (text, speaker, _), wave in zip(CONVERSATION, waves(), strict=True):
        got = session.add(text, wave, speaker, sample_rate=16000)
        want = predictor.predict(text, wave, speaker, history[-predictor.context_length:], sample_rate=16000)
        assert max(abs(got[c] - want[c]) for c in want) < 1e-4
        history.append({"text": text, "speaker": speaker, "audio": wave, "sample_rate": 16000})
    assert len(session.history) == session.model.context_length == 2
    assert len(session.model.audio_memory) == len(CONVERSATION)  # each utterance's audio encoded once
    session.reset()
    text, speaker, _ = CONVERSATION[2]
    first = session.add(text, waves()[2], speaker, sample_rate=16000)
    assert first == pytest.approx(predictor.predict(text, waves()[2], speaker, sample_rate=16000), abs=1e-4)


def test_an_agents_remembered_words_are_context_like_any_utterance(exported, model_dir):  # noqa: F811
    session, predictor = TurnSession(exported, "fp32"), TurnPredictor(model_dir)
    session.remember("did you like it", 1)  # what the agent said: no audio, no prediction
    wave = waves()[4]
    got = session.add("it was nice you know", wave, 0, sample_rate=16000)
    want = predictor.predict("it was nice you know", wave, 0, [{"text": "did you like it", "speaker": 1}],
                             sample_rate=16000)
    alone = predictor.predict("it was nice you know", wave, 0, sample_rate=16000)
    assert max(abs(got[c] - want[c]) for c in want) < 1e-4 and got != pytest.approx(alone, abs=1e-4)
    assert [h["speaker"] for h in session.history] == [1, 0]
    with pytest.raises(DataError, match="remembered utterance: empty text"):
        session.remember("  ", 1)
    with pytest.raises(DataError, match="remembered utterance: speaker must be 0 or 1"):
        session.remember("hello", 2)


def test_the_onnx_backend_runs_without_torch(exported):  # noqa: F811
    code = (f"import sys, numpy as np\n"
            f"from turnfusion.serving.onnx_backend import TurnSession\n"
            f"s = TurnSession({str(exported)!r})\n"
            f"p = s.add('hello there', np.sin(np.arange(16000) / 9).astype('float32'), 0, sample_rate=16000)\n"
            f"assert abs(sum(p.values()) - 1) < 1e-5, p\n"
            f"print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("kwargs,message", [
    ({"audio": np.zeros(16000, np.float32), "sample_rate": 0}, r"sample_rate must be a whole number .* got 0"),
    ({"audio": np.zeros(16000, np.float32), "sample_rate": 16000.5}, r"sample_rate must be a whole number"),
    ({"audio": np.zeros(0, np.float32), "sample_rate": 16000}, r"shorter than 50 ms"),
    ({"audio": np.full(16000, np.nan, np.float32), "sample_rate": 16000}, r"non-finite"),
    ({"audio": None}, r"needs its audio"),
    ({"audio": np.zeros(16000, np.float32), "sample_rate": 16000, "speaker": np.zeros(3)},
     r"current utterance: speaker must be 0 or 1, got ndarray"),
])
def test_bad_inputs_give_one_line_errors(exported, kwargs, message):  # noqa: F811
    with pytest.raises(DataError, match=message) as err:
        TurnSession(exported).add("hello there", **{"speaker": 0, **kwargs})
    assert "\n" not in str(err.value)


def test_a_missing_or_foreign_directory_is_named(exported, model_dir, tmp_path):  # noqa: F811
    with pytest.raises(DataError, match=r"not an exported turnfusion model \(no manifest.json; run the export stage"):
        OnnxTurnModel(model_dir)
    broken = tmp_path / "broken"
    shutil.copytree(exported, broken)
    (broken / "int8" / "audio.onnx").unlink()
    with pytest.raises(DataError, match=r"broken/int8/audio.onnx: missing \(listed in manifest.json\)"):
        OnnxTurnModel(broken)
    with pytest.raises(DataError, match=r"precision must be one of \['fp32', 'int8'\], got 'fp16'"):
        OnnxTurnModel(exported, "fp16")
    manifest = json.loads((exported / "manifest.json").read_text())
    (broken / "manifest.json").write_text(json.dumps({**manifest, "format": 99}))
    with pytest.raises(DataError, match=r"manifest.json: format 99, this turnfusion reads \[2, 3\]; export the model "
                                        r"again"):
        OnnxTurnModel(broken)
    (broken / "manifest.json").write_text("{not json")
    with pytest.raises(DataError, match=r"broken/manifest.json: not JSON"):
        OnnxTurnModel(broken)


def test_cli_predicts_with_the_onnx_backend(exported, tmp_path, capsys):  # noqa: F811
    import soundfile as sf

    sf.write(tmp_path / "a.wav", tone(1.5, 44100), 44100)
    args = ["predict", "--backend", "onnx", "--model", str(exported), "--text", "how are you", "--audio",
            str(tmp_path / "a.wav"), "--speaker", "1", "--context", "0:hello there"]
    assert cli([*args, "--precision", "fp32"]) == 0
    probs = json.loads(capsys.readouterr().out)
    want = OnnxTurnModel(exported, "fp32").predict("how are you", tmp_path / "a.wav", 1,
                                                  [{"text": "hello there", "speaker": 0}])
    assert probs == pytest.approx(want)
    assert cli(["predict", "--backend", "onnx", "--model", str(tmp_path), "--text", "hi"]) == 2
    assert "no manifest.json" in capsys.readouterr().err


def test_predict_csv_with_the_onnx_backend_matches_pytorch_row_for_row(exported, model_dir, recording_dir,  # noqa: F811
                                                                      tmp_path):
    import pandas as pd
    from conftest import utterance_table

    utterance_table([("v1", "v1_0", "hello there", 0, 0.0, 1.0, 0), ("v1", "v1_1", "how are you", 1, 1.0, 2.0, 1),
                     ("v1", "v1_2", "fine thanks", 2, 2.1, 3.5, 0), ("v2", "v2_0", "", 0, 0.0, 1.0, 0),
                     ("v9", "v9_0", "no recording", 0, 0.0, 1.0, 0)]).to_csv(tmp_path / "u.csv", index=False)
    want = TurnPredictor(model_dir).predict_csv(tmp_path / "u.csv", recording_dir)
    assert cli(["predict-csv", "--backend", "onnx", "--precision", "fp32", "--model", str(exported), "--csv",
                str(tmp_path / "u.csv"), "--audio-dir", str(recording_dir), "--out", str(tmp_path / "p.csv")]) == 0
    got = pd.read_csv(tmp_path / "p.csv", keep_default_na=False, na_values=[""])
    assert got.sentence_id.tolist() == want.sentence_id.tolist()
    assert got.skipped.fillna("").tolist() == want.skipped.tolist()
    columns = ["p_keep", "p_shift", "p_backchannel"]
    assert np.allclose(got[columns].to_numpy(float), want[columns].to_numpy(float), atol=1e-4, equal_nan=True)
    assert got[columns].notna().sum().sum() == 9  # three rows predicted, two skipped with their reason


def test_one_session_serves_both_backends_with_the_same_answers(exported, model_dir):  # noqa: F811
    """TurnSession over the PyTorch predictor and over the fp32 export: one conversation, the same probabilities
    (measured fp32 parity 6e-8), the same history; both predictors are `serving.predictor.Predictor`s."""
    from turnfusion.serving.predictor import Predictor

    torch_model, onnx_model = TurnPredictor(model_dir), OnnxTurnModel(exported, precision="fp32")
    assert isinstance(torch_model, Predictor) and isinstance(onnx_model, Predictor)
    sessions = [TurnSession(torch_model), TurnSession(onnx_model)]
    turns = [("so i went to the market", 0, 1.2, 0), ("did you like it", 1, 0.8, 1), ("yeah", 0, 0.4, 2)]
    for text, speaker, seconds, seed in turns:
        wave = tone(seconds, 16000, 150 + 60 * seed)
        answers = [s.add(text, wave, speaker, 16000) for s in sessions]
        assert answers[0] == pytest.approx(answers[1], abs=1e-5)
    assert [h["text"] for h in sessions[0].history] == [h["text"] for h in sessions[1].history]


@pytest.fixture(scope="module")
def local_exports(local_front_end_dir, tmp_path_factory):
    """The model with a local audio front end exported twice: int8 dynamic, and int8 static (calibrated)."""
    from turnfusion.serving.export import export

    out = tmp_path_factory.mktemp("onnx")
    export(local_front_end_dir, out / "dynamic")
    export(local_front_end_dir, out / "static", [speech_like(1 + k / 4, k) for k in range(6)])
    return out


@pytest.mark.parametrize("kind,precision,tolerance", [("dynamic", "fp32", 1e-5), ("dynamic", "int8", 0.01),
                                                      ("static", "int8", 0.025)])
def test_a_local_front_end_exports_as_its_own_graph_and_predicts_as_pytorch(local_exports, local_front_end_dir,
                                                                           kind, precision, tolerance):
    manifest = json.loads((local_exports / kind / "manifest.json").read_text())
    assert manifest["graphs"]["audio_front_end"] | {} == {"inputs": ["waveform"], "output": "frames", "dim": 8,
                                                         "hop": 320, "field": 400}
    assert manifest["graphs"]["audio"]["inputs"] == ["frames"]
    onnx_model, torch_model = OnnxTurnModel(local_exports / kind, precision), TurnPredictor(local_front_end_dir)
    rng = np.random.default_rng(0)
    for k in range(3):
        wave = (tone(1 + k / 2, 16000, 150 + 60 * k) + rng.normal(0, 0.01, int(16000 * (1 + k / 2)))).astype(np.float32)
        want = torch_model.predict("how are you", wave, speaker=k % 2, sample_rate=16000)
        got = onnx_model.predict("how are you", wave, speaker=k % 2, sample_rate=16000)
        assert max(abs(got[c] - want[c]) for c in want) < tolerance


@pytest.mark.parametrize("kind,precision", [("dynamic", "fp32"), ("dynamic", "int8"), ("static", "int8")])
def test_the_front_end_in_pieces_gives_the_vector_of_the_whole_segment(local_exports, kind, precision):
    from turnfusion.serving.onnx_backend import IncrementalAudio

    model = OnnxTurnModel(local_exports / kind, precision)
    audio = np.random.default_rng(2).normal(0, 0.1, 30000).astype(np.float32)
    pieces = IncrementalAudio(model)
    for end in range(0, 26000, 1777):  # pieces of any length, as chunks come
        pieces.extend(audio[:end])
    assert pieces.count == pieces.frames_in(24879) == 77
    for end, offset in ((28000, 0), (28000, 320 * 9), (20000, 320 * 3)):  # frames computed beyond the end unused
        whole = model.audio_vector(audio[offset:end])
        assert np.abs(pieces.vector(audio[:end], offset) - whole).max() < 1e-5
        assert np.abs(pieces.vector(audio[:end], offset + 320) - whole).max() > 1e-3  # a frame off differs
    pieces.drop(320 * 20)  # the utterance's first 20 hops are no longer kept: frames count from there
    rest = audio[320 * 20: 28000]
    assert np.abs(pieces.vector(rest, 320 * 2) - model.audio_vector(rest[640:])).max() < 1e-5
    with pytest.raises(ValueError, match="not a whole number of hops"):
        pieces.vector(rest, 100)


def edited_manifest(source, tmp_path, edit):
    copy = tmp_path / "copy"
    shutil.copytree(source, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    edit(manifest["graphs"])
    (copy / "manifest.json").write_text(json.dumps(manifest))
    return copy


@pytest.mark.parametrize("edit,message", [
    (lambda g: g["audio_front_end"].update(hop=160), r"audio_front_end: 720 and 559 samples give 2 and 1 frames"),
    (lambda g: g["audio_front_end"].update(field=720), r"audio_front_end: 1360 and 1039 samples give 4 and 2 frames"),
    (lambda g: g["audio_front_end"].update(hop=0), r"graphs.audio_front_end.hop must be a whole number of samples"),
    (lambda g: g["audio_front_end"].update(field="400"), r"graphs.audio_front_end.field must be a whole number"),
    (lambda g: g["audio_front_end"].update(field=100), r"field \(100\) is shorter than its hop \(320\)"),
    (lambda g: g.pop("audio_front_end"), r"the audio graph reads \['frames'\], but without an audio_front_end graph"),
])
def test_a_front_end_manifest_that_lies_is_refused_in_one_line(local_exports, tmp_path, edit, message):
    copy = edited_manifest(local_exports / "dynamic", tmp_path, edit)
    with pytest.raises(DataError, match=message):
        OnnxTurnModel(copy, "fp32", verify=False)


def test_an_export_without_a_local_front_end_is_not_encoded_in_pieces(exported):  # noqa: F811
    from turnfusion.serving.onnx_backend import IncrementalAudio

    model = OnnxTurnModel(exported, "fp32")
    assert model.front_end is None and "audio_front_end" not in model.graphs
    with pytest.raises(DataError, match="is not local"):
        IncrementalAudio(model)


def test_a_front_end_that_is_not_local_is_refused_whatever_its_manifest_says(local_exports, model_dir, tmp_path):
    """The default (group-norm) front end's graph put where a local one goes: same shapes, but its frames depend on
    the whole input, so pieces would be silently wrong."""
    import torch

    from turnfusion.models import TurnFusionModel
    from turnfusion.serving.export import AudioFrontEnd, _export

    copy = edited_manifest(local_exports / "dynamic", tmp_path, lambda g: None)
    _export(AudioFrontEnd(TurnFusionModel.from_pretrained(model_dir)), (torch.randn(1, 16000),),
            copy / "fp32" / "audio_front_end.onnx", ["waveform"], "frames",
            {"waveform": {0: "batch", 1: "samples"}, "frames": {0: "batch", 1: "frames"}})
    with pytest.raises(DataError, match="depend on more than their own samples .not a local front end."):
        OnnxTurnModel(copy, "fp32", verify=False)


@pytest.mark.parametrize("window_hop,in_pieces", [(1, True), (160, True), (640, True), (100, False)])
def test_pieces_run_only_where_the_policy_cuts_on_the_front_ends_grid(local_exports, window_hop, in_pieces):
    import dataclasses

    from turnfusion.serving.onnx_backend import pieces_for

    model = OnnxTurnModel(local_exports / "dynamic", "fp32")
    model.processor.config = dataclasses.replace(model.processor.config, window_hop=window_hop)
    assert (pieces_for(model, 0.2) is not None) is in_pieces
    assert pieces_for(model, 0.0) is None

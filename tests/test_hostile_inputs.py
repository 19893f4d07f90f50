"""Hostile inputs: annotation ids that are paths, crafted checkpoints, edited or corrupt model folders, bad text,
audio and command lines. Each case is built here, in a temp folder; each asserts a one-line error (or the
documented recovery) and that nothing outside the folder the code may write changed."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import params_config, tone, utterance_table
from test_export import exported  # noqa: F401  (the fixture)

from turnfusion.audio import recording_path
from turnfusion.config import DownloadConfig
from turnfusion.data.download import download_all, download_audio
from turnfusion.data.sources.rehearsal import render_rehearsal
from turnfusion.schema import DataError, read_utterances
from turnfusion.serving.cli import main as cli
from turnfusion.serving.onnx_backend import OnnxTurnModel
from turnfusion.serving.predict import TurnPredictor
from turnfusion.training.train import load_checkpoint

REPO = Path(__file__).parents[1]
HOSTILE_IDS = ["../victim", "../../x", "%(id)s/../../../x", "/abs/x", "..", ".hidden", "a/b", "x\x00y", "a b"]


def test_youtube_ids_are_names_even_when_they_start_with_a_dash(tmp_path):
    csv = tmp_path / "ann.csv"
    utterance_table([("-3BxP7cRk1E", "s0", "hello there", 0, 0.0, 1.0, 0),
                     ("1BIHGw299eI", "s1", "how are you", 1, 1.0, 2.0, 1)]).to_csv(csv, index=False)
    assert read_utterances(csv).video_id.tolist() == ["-3BxP7cRk1E", "1BIHGw299eI"]
    assert recording_path(tmp_path, "-3BxP7cRk1E") == tmp_path / "-3BxP7cRk1E.flac"


def snapshot(root: Path, writable: Path | None = None) -> dict:
    """Every file and folder under `root` (but `writable`) with its size and modification time."""
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")
            if writable is None or not p.is_relative_to(writable)}


@pytest.fixture
def victims(tmp_path):
    """Files a path-as-id would hit: beside and above the folder the code writes (`tmp_path/box/out`)."""
    for name in ("victim.txt", "victim.flac", "victim.wav", "x.flac", "box/x.flac"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("precious")
    (tmp_path / "box" / "out").mkdir(parents=True)
    return tmp_path


# --- video_id is a name, never a path ------------------------------------------------------------------------
@pytest.mark.parametrize("video_id", HOSTILE_IDS)
def test_an_annotation_id_that_is_a_path_is_a_one_line_error_naming_file_and_row(tmp_path, video_id):
    csv = tmp_path / "ann.csv"
    utterance_table([("ok_id", "s0", "hello there", 0, 0.0, 1.0, 0),
                     (video_id, "s1", "how are you", 1, 1.0, 2.0, 1)]).to_csv(csv, index=False)
    with pytest.raises(DataError, match=r"ann.csv: row 3 \('s1'\): video_id .* is not a name") as err:
        read_utterances(csv)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("video_id", HOSTILE_IDS)
def test_download_refuses_a_path_as_id_and_touches_nothing(victims, video_id):
    out = victims / "box" / "out"
    source = victims / "box" / "source.wav"
    import soundfile as sf

    sf.write(source, tone(0.5, 16000), 16000)
    before = snapshot(victims, writable=out)
    with pytest.raises(DataError, match="is not a name"):
        download_all(pd.DataFrame({"video_id": [video_id], "url": [str(source)]}), out, params_config(DownloadConfig),
                     progress=False)
    with pytest.raises(DataError, match="is not a name"):
        download_audio(video_id, str(source), out, params_config(DownloadConfig))
    assert snapshot(victims, writable=out) == before
    assert list(out.iterdir()) == []


def test_the_rehearsal_and_recording_lookup_refuse_a_path_as_id(victims):
    table = utterance_table([("../x", "s0", "hello there", 0, 0.0, 1.0, 0)])
    before = snapshot(victims)
    with pytest.raises(DataError, match=r"video_id '../x' is not a name"):
        render_rehearsal(table, victims / "box", seed=0, workers=1)
    with pytest.raises(DataError, match=r"video_id '../x' is not a name"):
        recording_path(victims / "box" / "out", "../x")
    assert {p for p in snapshot(victims)} - {victims / "box" / "remote"} == set(before)


def test_predict_csv_never_reads_a_recording_outside_its_folder(model_dir, victims, capsys):
    import soundfile as sf

    sf.write(victims / "box" / "x.wav", tone(3, 16000), 16000)  # what `<audio-dir>/../x` would read
    csv = victims / "box" / "in.csv"
    utterance_table([("../x", "s0", "hello there", 0, 0.0, 1.0, 0)]).to_csv(csv, index=False)
    assert cli(["predict-csv", "--model", str(model_dir), "--csv", str(csv), "--audio-dir",
                str(victims / "box" / "out"), "--out", str(victims / "box" / "out" / "p.csv")]) == 2
    err = capsys.readouterr().err
    assert "video_id '../x' is not a name" in err and err.count("\n") == 1


def test_the_source_stage_stops_on_a_path_as_id_before_writing_anything(victims):
    import yaml

    box = victims / "box"
    csv = box / "val.csv"
    utterance_table([("../escaped", "s0", "hello there", 0, 0.0, 1.0, 0)]).to_csv(csv, index=False)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"]["source"] = "mmf2f"
    params["mmf2f"].update(annotations={"val": str(csv)}, recordings="rehearsal")
    (box / "params.yaml").write_text(yaml.safe_dump(params))
    before = snapshot(victims, writable=box / "data")
    done = subprocess.run([sys.executable, "-m", "stages.source", "--out", "data/source"], cwd=box,
                          capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "row 2 ('s0'): video_id '../escaped' is not a name" in done.stderr.strip().splitlines()[-1]
    assert snapshot(victims, writable=box / "data") == before


# --- checkpoints are never unpickled ---------------------------------------------------------------------------
class Payload:
    """What a crafted checkpoint holds: unpickling it would create `marker`."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (self.marker,)


def test_a_crafted_checkpoint_is_refused_without_running_its_payload(tmp_path):
    marker, checkpoint = tmp_path / "ran", tmp_path / "last.pt"
    torch.save({"fingerprint": "x", "state": Payload(marker)}, checkpoint)
    with pytest.raises(DataError, match=r"last.pt: not a checkpoint of plain tensors and values, refused"):
        load_checkpoint(checkpoint)
    assert not marker.exists()


def test_training_refuses_a_crafted_checkpoint_where_it_would_resume(tmp_path):
    from toy import ToyCached, toy_model, train_cfg

    from turnfusion.training.train import train

    marker = tmp_path / "ran"
    (tmp_path / "ck").mkdir()
    torch.save({"fingerprint": "x", "state": Payload(marker)}, tmp_path / "ck" / "last.pt")
    with pytest.raises(DataError, match="refused"):
        train(toy_model(), ToyCached(16, 0), ToyCached(8, 1), train_cfg(epochs=1, batch_size=8), tmp_path / "m",
              tmp_path / "ck", progress=False)
    assert not marker.exists()


# --- exported model folders are checked before use -------------------------------------------------------------
def edited(exported_dir: Path, to: Path, edit, rehash: bool = False) -> Path:  # noqa: F811
    """A copy of an export with `edit(folder)` applied; `rehash`: the manifest's hashes made to match again (an
    edit by someone who knows the format), so that the content check is what must catch it."""
    shutil.copytree(exported_dir, to)
    edit(to)
    if rehash:
        manifest = json.loads((to / "manifest.json").read_text())
        for name, entry in manifest["files"].items():
            if (to / name).is_file():
                entry["sha256"] = hashlib.sha256((to / name).read_bytes()).hexdigest()
        (to / "manifest.json").write_text(json.dumps(manifest))
    return to


def edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_an_export_whose_files_do_not_match_their_hashes_is_refused_unless_asked(exported, tmp_path):  # noqa: F811
    wave = tone(1.0, 16000)
    want = OnnxTurnModel(exported).predict("hello there", wave, sample_rate=16000)
    slow = edited(exported, tmp_path / "rate", lambda d: edit_json(
        d / "preprocessor_config.json", lambda c: c.update(sample_rate=8000)))
    with pytest.raises(DataError, match=r"rate/preprocessor_config.json: its sha256 does not match manifest.json"):
        OnnxTurnModel(slow)
    edited_answer = OnnxTurnModel(slow, verify=False).predict("hello there", wave, sample_rate=16000)
    assert edited_answer != want  # the opt-out does load the edit: what the check protects against
    flipped = edited(exported, tmp_path / "graph", lambda d: (d / "int8" / "head.onnx").write_bytes(
        (d / "int8" / "head.onnx").read_bytes()[:-1] + b"\x00"))
    with pytest.raises(DataError, match=r"graph/int8/head.onnx: its sha256 does not match"):
        OnnxTurnModel(flipped)


def evil_graph(folder: Path) -> None:
    edit_json(folder / "manifest.json", lambda m: m["graphs"].update({"../../evil": {"inputs": [], "output": "x"}}))


def listed_outside(folder: Path) -> None:
    (folder.parent / "evil.onnx").write_bytes(b"x")
    edit_json(folder / "manifest.json", lambda m: m["files"].update({"../evil.onnx": {"sha256": "0"}}))


@pytest.mark.parametrize(("edit", "rehash", "message"), [
    (evil_graph, False, r"`graphs` must name the head and at most \['audio', 'audio_front_end', 'head', 'text'\]"),
    (listed_outside, False, r"manifest.json: file '../evil.onnx': leaves its folder"),
    (lambda d: edit_json(d / "manifest.json", lambda m: m.pop("files")), False, r"no `files` with their sha256"),
    (lambda d: (d / "int8" / "text.onnx").write_bytes((d / "int8" / "text.onnx").read_bytes()[:500]), True,
     r"int8/text.onnx: not a loadable ONNX graph"),
    (lambda d: (d / "int8" / "head.onnx").write_bytes(b"not a graph at all"), True,
     r"int8/head.onnx: not a loadable ONNX graph"),
    (lambda d: shutil.copy(d / "int8" / "text.onnx", d / "int8" / "audio.onnx"), True,
     r"int8/audio.onnx: takes inputs \['attention_mask', 'input_ids'\], but the audio graph takes "
     r"\['frames', 'waveform'\]"),
    (lambda d: edit_json(d / "preprocessor_config.json", lambda c: c.update(sample_rate=0)), True,
     r"preprocessor_config.json: sample_rate must be a whole number from 1000 to 384000, got 0"),
    (lambda d: edit_json(d / "preprocessor_config.json", lambda c: c.update(max_length=10_000)), True,
     r"preprocessor_config.json: max_length must be a whole number from 1 to the text encoder's 32"),
    (lambda d: (d / "preprocessor_config.json").unlink(), False,
     r"preprocessor_config.json: missing \(listed in manifest.json\)"),
    (lambda d: edit_json(d / "manifest.json", lambda m: m["files"].pop("preprocessor_config.json")), False,
     r"preprocessor_config.json: not listed in manifest.json"),
    (lambda d: edit_json(d / "config.json", lambda c: c.update(audio_pooling="median")), True,
     r"config.json: audio_pooling must be one of"),
    (lambda d: edit_json(d / "config.json", lambda c: c.update(audio_segments=10**9)), True,
     r"config.json: audio_segments must be a whole number from 1 to 65, got 1000000000"),
    (lambda d: edit_json(d / "preprocessor_config.json", lambda c: c.update(n_previous=10**6)), True,
     r"preprocessor_config.json: n_previous must be a whole number from 0 to 64"),
    (lambda d: (d / "tokenizer.json").write_text("{"), True, r"tokenizer.json: not a tokenizer file"),
    (lambda d: (d / "tokenizer.json").unlink(), False, r"tokenizer.json: missing \(listed in manifest.json\)"),
])
def test_a_corrupt_or_edited_export_is_a_one_line_error_naming_the_file(exported, tmp_path, edit, rehash,  # noqa: F811
                                                                       message):
    folder = edited(exported, tmp_path / "copy", edit, rehash)
    before = snapshot(tmp_path)
    with pytest.raises(DataError, match=message) as err:
        OnnxTurnModel(folder)
    assert "\n" not in str(err.value)
    assert snapshot(tmp_path) == before


# --- torch model folders ----------------------------------------------------------------------------------------
def truncate(path: Path, keep: int) -> None:
    path.write_bytes(path.read_bytes()[:keep])


def pickled_weights_only(folder: Path) -> None:
    """The weights as a pickle (`pytorch_model.bin`) whose unpickling would create `ran` beside the folder."""
    (folder / "model.safetensors").unlink()
    torch.save({"x": Payload(folder.parent / "ran")}, folder / "pytorch_model.bin")


@pytest.mark.parametrize(("edit", "message"), [
    (lambda d: truncate(d / "model.safetensors", 300), r"model.safetensors: not a safetensors file"),
    (lambda d: (d / "model.safetensors").write_bytes(np.random.default_rng(0).bytes(4096)),
     r"model.safetensors: not a safetensors file"),
    (pickled_weights_only, r"model.safetensors: missing; a trained model directory has its weights as safetensors"),
    (lambda d: (d / "tokenizer.json").unlink(), r"tokenizer.json: missing"),
    (lambda d: edit_json(d / "config.json", lambda c: c["text_config"].update(n_embd=32)),
     r"model.safetensors: cannot be loaded as the model config.json describes|mismatched keys"),
    (lambda d: edit_json(d / "config.json", lambda c: c.update(text_pooling="median")),
     r"config.json: text_pooling must be one of"),
    (lambda d: edit_json(d / "config.json", lambda c: c.pop("hidden_size")),
     r"config.json: hidden_size must be a whole number from 1 to 65536, got None"),
    (lambda d: edit_json(d / "config.json", lambda c: c.update(dropout=1.5)),
     r"config.json: dropout must be a number from 0 to below 1, got 1.5"),
    (lambda d: edit_json(d / "preprocessor_config.json", lambda c: c.update(max_length=33)),
     r"preprocessor_config.json: max_length must be a whole number from 1 to the text encoder's 32, got 33"),
    (lambda d: edit_json(d / "preprocessor_config.json", lambda c: c.update(sample_rate=0)),
     r"preprocessor_config.json: sample_rate must be"),
    (lambda d: edit_json(d / "preprocessor_config.json", lambda c: c.pop("channels")),
     r"preprocessor_config.json: lacks \['channels'\]"),
    (lambda d: edit_json(d / "preprocessor_config.json", lambda c: c.update(read_labels=True)),
     r"preprocessor_config.json: unknown field\(s\) \['read_labels'\]"),
    (lambda d: (d / "preprocessor_config.json").write_text("{"), r"preprocessor_config.json: not JSON"),
    (lambda d: (d / "preprocessor_config.json").unlink(), r"preprocessor_config.json: missing"),
])
def test_a_corrupt_or_edited_model_folder_is_a_one_line_error_naming_the_file(model_dir, tmp_path, edit, message):
    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    edit(folder)
    before = snapshot(tmp_path)
    with pytest.raises(DataError, match=message) as err:
        TurnPredictor(folder)
    assert "\n" not in str(err.value)
    assert snapshot(tmp_path) == before and not (tmp_path / "ran").exists()


# --- text, audio and command lines ------------------------------------------------------------------------------
def test_text_that_is_not_unicode_is_a_clear_error(model_dir, exported):  # noqa: F811
    for predictor in (TurnPredictor(model_dir), OnnxTurnModel(exported)):
        with pytest.raises(DataError, match=r"current utterance: text is not valid Unicode \('\\udce9' at character 3"):
            predictor.predict("caf\udce9", tone(1.0, 16000), sample_rate=16000)
        with pytest.raises(DataError, match=r"context utterance 1: text is not valid Unicode"):
            predictor.predict("hello", tone(1.0, 16000), sample_rate=16000,
                              context=[{"text": "\ud800 x", "speaker": 1}])


def test_non_utf8_bytes_on_the_command_line_are_a_one_line_error(model_dir):
    done = subprocess.run([sys.executable, "-m", "turnfusion.serving.cli", "predict", "--model",
                           str(model_dir).encode(), "--text", b"caf\xe9"], capture_output=True, timeout=300)
    err = done.stderr.decode()
    assert done.returncode == 2 and "Traceback" not in err
    assert err.strip() == "error: current utterance: text is not valid Unicode ('\\udce9' at character 3: bytes " \
                          "that are not UTF-8?)"


@pytest.mark.parametrize(("audio", "message"), [
    (np.full(16000, 1e30, np.float32), r"audio reaches 1e\+30, but float audio is full scale"),
    (tone(1.0, 16000) * 32767, r"audio reaches 9.83e\+03, but float audio is full scale .* divide int16"),
    (np.ones(16000, bool), r"audio samples must be float .* got dtype bool"),
    (np.array([0.1] * 16000, dtype=object), r"got dtype object"),
    (np.zeros(16000, np.complex64), r"got dtype complex64"),
])
def test_audio_no_model_was_trained_on_is_refused_by_both_backends(model_dir, exported, audio, message):  # noqa: F811
    for predictor in (TurnPredictor(model_dir), OnnxTurnModel(exported)):
        with pytest.raises(DataError, match=message):
            predictor.predict("hello there", audio, sample_rate=16000)


def test_integer_pcm_is_read_as_full_scale(model_dir):
    predictor = TurnPredictor(model_dir)
    wave = tone(1.0, 16000)
    pcm = np.round(wave * 32768).astype(np.int16)
    want = predictor.predict("hello there", pcm.astype(np.float32) / 32768, sample_rate=16000)
    assert predictor.predict("hello there", pcm, sample_rate=16000) == pytest.approx(want, abs=1e-6)


def test_every_audio_path_given_is_checked_even_where_the_model_does_not_read_it(model_dir, tmp_path, capsys):
    import soundfile as sf

    sf.write(tmp_path / "cur.wav", tone(1.0, 16000), 16000)
    base = ["predict", "--model", str(model_dir), "--text", "hello", "--audio", str(tmp_path / "cur.wav")]
    assert cli([*base, "--context", "0::prev.wav"]) == 2
    assert "--context '0::prev.wav': empty text before the audio file" in capsys.readouterr().err
    assert cli([*base, "--context", "0:hello:missing.wav", "--context", "1:yes"]) == 2
    assert "missing.wav: recording not found" in capsys.readouterr().err


def test_predict_csv_refuses_folders_and_never_overwrites_its_input(model_dir, recording_dir, tmp_path, capsys):
    csv = tmp_path / "in.csv"
    utterance_table([("v1", "v1_0", "hello there", 0, 0.0, 1.0, 0)]).to_csv(csv, index=False)
    content = csv.read_bytes()
    base = ["predict-csv", "--model", str(model_dir), "--audio-dir", str(recording_dir)]
    cases = [(["--csv", str(tmp_path), "--out", str(tmp_path / "p.csv")], "a folder, not a file"),
             (["--csv", str(csv), "--out", str(tmp_path)], "a folder; give the path of the CSV to write"),
             (["--csv", str(csv), "--out", str(csv)], "the input CSV itself"),
             (["--csv", str(csv), "--out", str(tmp_path / "." / "in.csv")], "the input CSV itself")]
    for args, message in cases:
        assert cli([*base, *args]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
    assert csv.read_bytes() == content and not (tmp_path / "p.csv").exists()


def test_unknown_encoder_sizes_fail_before_a_stage_reads_its_inputs(tmp_path):
    import yaml

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["model"]["audio_config"]["hiden_size"] = 64
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    done = subprocess.run([sys.executable, "-m", "stages.pretrain_audio", "--segments", "nope", "--out", "o",
                           "--report", "r.json"], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == ("error: params.yaml: model.audio_config.hiden_size is not a "
                                                    "field of HubertConfig (1 unknown)")
    params["model"]["audio_config"].pop("hiden_size")
    params["train"]["epochs"] = -1
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    done = subprocess.run([sys.executable, "-m", "stages.pretrain_audio", "--segments", "nope", "--out", "o",
                           "--report", "r.json"], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 1 and "train.epochs" in done.stderr.strip().splitlines()[-1]


def test_a_row_the_model_refuses_is_a_counted_skip_in_a_batch_not_the_end_of_the_run(model_dir, recording_dir,
                                                                                      tmp_path, capsys):
    import soundfile as sf

    sf.write(recording_dir / "loud.wav", tone(3, 16000) * 10, 16000, subtype="FLOAT")  # past full scale
    csv = tmp_path / "in.csv"
    utterance_table([("v1", "v1_0", "hello there", 0, 0.0, 1.0, 0), ("v1", "v1_1", "hm", 2, 1.2, 1.23, 1),
                     ("v1", "v1_2", "how are you", 1, 1.5, 2.5, 1),
                     ("loud", "loud_0", "so loud", 0, 0.0, 1.0, 0)]).to_csv(csv, index=False)
    assert cli(["predict-csv", "--model", str(model_dir), "--csv", str(csv), "--audio-dir", str(recording_dir),
                "--out", str(tmp_path / "p.csv")]) == 0
    result = pd.read_csv(tmp_path / "p.csv", keep_default_na=False).set_index("sentence_id")
    assert result.skipped["v1_1"] == "shorter_than_50ms"  # as the segment stage skips it (`timestamp_problem`)
    assert result.skipped["loud_0"].startswith("input: current utterance: audio reaches 3")
    assert result.skipped["v1_0"] == result.skipped["v1_2"] == ""
    out = capsys.readouterr().out
    assert "2 of 4 rows predicted" in out and "1 shorter_than_50ms" in out and "1 input" in out
    assert cli(["predict", "--model", str(model_dir), "--text", "hi", "--no-verify"]) == 2  # an onnx-only flag
    assert "--no-verify checks an ONNX export's files" in capsys.readouterr().err

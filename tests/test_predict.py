import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from conftest import tone, utterance_table
from test_training import AUDIO_CFG
from turnfusion.cli import main as cli
from turnfusion.models import TurnFusionConfig, TurnFusionModel
from turnfusion.predict import TurnPredictor
from turnfusion.schema import DataError
from turnfusion.text import train_tokenizer


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A small saved fusion model: config, safetensors weights and tokenizer in one directory."""
    d = tmp_path_factory.mktemp("model")
    tokenizer = train_tokenizer(["hello there how are you", "i went to the market and"] * 20, 300)
    torch.manual_seed(0)
    text = {"vocab_size": len(tokenizer), "n_layer": 1, "n_embd": 16, "n_head": 2, "n_positions": 32}
    model = TurnFusionModel(TurnFusionConfig(mode="fusion", text_config=text, audio_config=AUDIO_CFG,
                                             hidden_size=16, preprocessing={"max_length": 24}))
    model.save_pretrained(d)
    tokenizer.save_pretrained(d)
    return d


@pytest.fixture
def wavs(tmp_path):
    sf.write(tmp_path / "a.wav", tone(1.5, 44100), 44100)  # another sample rate
    sf.write(tmp_path / "b.wav", np.stack([tone(1, 16000), tone(1, 16000, 440)], 1), 16000)  # stereo
    return tmp_path


def test_python_api_probabilities_sum_to_one(model_dir, wavs):
    predictor = TurnPredictor(model_dir)
    probs = predictor.predict("how are you", wavs / "a.wav", speaker=1,
                              context=[{"text": "hello there", "speaker": 0, "audio": wavs / "b.wav"}])
    assert set(probs) == {"keep", "shift", "backchannel"} and sum(probs.values()) == pytest.approx(1, abs=1e-5)
    array = predictor.predict("how are you", tone(1.5, 44100), sample_rate=44100, speaker=1,
                              context=[{"text": "hello there", "speaker": 0, "audio": wavs / "b.wav"}])
    assert array == pytest.approx(probs, abs=1e-4)  # a file and the same samples as an array agree
    alone = predictor.predict("how are you", wavs / "a.wav")  # no context: a documented default
    assert sum(alone.values()) == pytest.approx(1, abs=1e-5)


def test_cli_runs_end_to_end(model_dir, wavs, capsys):
    assert cli(["predict", "--model", str(model_dir), "--text", "how are you", "--audio", str(wavs / "a.wav"),
                "--speaker", "1", "--context", f"0:hello there:{wavs / 'b.wav'}"]) == 0
    probs = json.loads(capsys.readouterr().out)
    assert sum(probs.values()) == pytest.approx(1, abs=1e-5)


@pytest.mark.parametrize("kwargs,message", [
    ({"text": "", "audio": "a.wav"}, "current utterance: empty text"),
    ({"text": "hi", "audio": "missing.wav"}, "missing.wav: recording not found"),
    ({"text": "hi", "audio": "corrupt.wav"}, "corrupt.wav: unreadable audio"),
    ({"text": "hi", "audio": None}, "needs its audio"),
    ({"text": "hi", "audio": np.zeros(16000)}, "needs its sample_rate"),
    ({"text": "hi", "audio": "a.wav", "speaker": 3}, "speaker must be 0 or 1"),
    ({"text": "hi", "audio": "a.wav", "context": [{"text": None, "speaker": 0}]}, "context utterance 1: empty text"),
])
def test_bad_inputs_give_clear_errors(model_dir, wavs, kwargs, message):
    (wavs / "corrupt.wav").write_bytes(b"RIFF0000WAVEjunk")
    if isinstance(kwargs.get("audio"), str):
        kwargs = {**kwargs, "audio": wavs / kwargs["audio"]}
    with pytest.raises(DataError, match=message):
        TurnPredictor(model_dir).predict(**kwargs)


def test_cli_bad_input_is_one_line_not_a_stack_trace(model_dir, capsys):
    assert cli(["predict", "--model", str(model_dir), "--text", "hi", "--audio", "/nonexistent.wav"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: /nonexistent.wav: recording not found") and "Traceback" not in err
    assert cli(["predict", "--model", "/no/model", "--text", "hi"]) == 2


def test_batch_mode_over_an_mmf2f_csv(model_dir, recording_dir, tmp_path):
    table = utterance_table([("v1", "v1_0", "hello there", 0, 0.0, 1.0, 0), ("v1", "v1_1", "how are you", 1, 1.0, 2.0, 0),
                             ("v1", "v1_2", "bad times", 1, 3.0, 2.0, 1), ("v2", "v2_0", "", 0, 0.0, 1.0, 0),
                             ("v9", "v9_0", "no recording", 0, 0.0, 1.0, 0)])
    table.to_csv(tmp_path / "u.csv", index=False)
    assert cli(["predict-csv", "--model", str(model_dir), "--csv", str(tmp_path / "u.csv"), "--audio-dir",
                str(recording_dir), "--out", str(tmp_path / "p.csv")]) == 0
    out = pd.read_csv(tmp_path / "p.csv", keep_default_na=False, na_values=[""]).set_index("sentence_id")
    assert out.loc[["v1_0", "v1_1"], ["p_keep", "p_shift", "p_backchannel"]].sum(1).tolist() == pytest.approx([1, 1])
    assert out.loc["v1_2", "skipped"] == "start_not_before_end" and out.loc["v2_0", "skipped"] == "empty_text"
    assert out.loc["v9_0", "skipped"].startswith("recording:") and np.isnan(out.loc["v9_0", "p_shift"])


def test_context_audio_is_encoded_once_and_results_do_not_change(model_dir, wavs):
    predictor = TurnPredictor(model_dir)
    context = [{"text": "hello there", "speaker": 0, "audio": wavs / "b.wav"}]
    first = predictor.predict("how are you", wavs / "a.wav", 1, context)
    assert len(predictor._audio_cache) == 2
    again = predictor.predict("how are you", wavs / "a.wav", 1, context)
    assert again == first and len(predictor._audio_cache) == 2

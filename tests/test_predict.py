import json

import numpy as np
import pandas as pd
import pipeline
import pytest
import soundfile as sf
import torch
from conftest import params_config, tone, utterance_table
from pipeline import AUDIO_CFG

from turnfusion.cli import main as cli
from turnfusion.config import TrainConfig
from turnfusion.datasets import examples_for
from turnfusion.models import TurnFusionConfig, TurnFusionModel
from turnfusion.predict import TurnPredictor
from turnfusion.schema import DataError
from turnfusion.tokenize import train_tokenizer
from turnfusion.train import predict


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A small saved fusion model: config, safetensors weights and tokenizer in one directory."""
    d = tmp_path_factory.mktemp("model")
    tokenizer = train_tokenizer(["hello there how are you", "i went to the market and"] * 20, 300)
    torch.manual_seed(0)
    text = {"vocab_size": len(tokenizer), "n_layer": 1, "n_embd": 16, "n_head": 2, "n_positions": 32}
    model = TurnFusionModel(TurnFusionConfig(mode="fusion", text_config=text, audio_config=AUDIO_CFG,
                                             hidden_size=16, preprocessing={"max_length": 24}))
    for param in model.head.parameters():  # a head that reacts to its inputs
        torch.nn.init.normal_(param, std=0.2)
    model.save_pretrained(d)
    tokenizer.save_pretrained(d)
    return d


@pytest.fixture
def wavs(tmp_path):
    sf.write(tmp_path / "a.wav", tone(1.5, 44100), 44100)  # another sample rate
    sf.write(tmp_path / "b.wav", np.stack([tone(1, 16000), tone(1, 16000, 440)], 1), 16000)  # stereo
    return tmp_path


def test_python_api_takes_files_or_arrays_and_uses_the_context(model_dir, wavs):
    predictor = TurnPredictor(model_dir)
    context = [{"text": "hello there", "speaker": 0, "audio": wavs / "b.wav"}]
    probs = predictor.predict("how are you", wavs / "a.wav", speaker=1, context=context)
    assert set(probs) == {"keep", "shift", "backchannel"}
    array = predictor.predict("how are you", tone(1.5, 44100), sample_rate=44100, speaker=1, context=context)
    assert array == pytest.approx(probs, abs=1e-4)  # a file and the same samples as an array agree
    alone = predictor.predict("how are you", wavs / "a.wav")  # no context: a documented default
    assert max(abs(alone[k] - probs[k]) for k in probs) > 1e-3  # the context reaches the model


def test_cli_prints_what_the_api_returns(model_dir, wavs, capsys):
    assert cli(["predict", "--model", str(model_dir), "--text", "how are you", "--audio", str(wavs / "a.wav"),
                "--speaker", "1", "--context", f"0:hello there:{wavs / 'b.wav'}"]) == 0
    probs = json.loads(capsys.readouterr().out)
    context = [{"text": "hello there", "speaker": 0, "audio": wavs / "b.wav"}]
    assert probs == pytest.approx(TurnPredictor(model_dir).predict("how are you", wavs / "a.wav", 1, context))


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
    table = utterance_table([("v1", "v1_0", "hello there", 0, 0.0, 1.0, 0),
                             ("v1", "v1_1", "how are you", 1, 1.0, 2.0, 0),
                             ("v1", "v1_2", "bad times", 1, 3.0, 2.0, 1), ("v2", "v2_0", "", 0, 0.0, 1.0, 0),
                             ("v9", "v9_0", "no recording", 0, 0.0, 1.0, 0)])
    table.to_csv(tmp_path / "u.csv", index=False)
    assert cli(["predict-csv", "--model", str(model_dir), "--csv", str(tmp_path / "u.csv"), "--audio-dir",
                str(recording_dir), "--out", str(tmp_path / "p.csv")]) == 0
    out = pd.read_csv(tmp_path / "p.csv", keep_default_na=False, na_values=[""]).set_index("sentence_id")
    probs = out.loc[["v1_0", "v1_1"], ["p_keep", "p_shift", "p_backchannel"]]
    assert probs.notna().all().all()
    assert out.loc[["v1_0", "v1_1"], "prediction"].tolist() == probs.to_numpy().argmax(1).tolist()
    assert out.loc["v1_2", "skipped"] == "start_not_before_end" and out.loc["v2_0", "skipped"] == "empty_text"
    assert out.loc["v9_0", "skipped"].startswith("recording:") and np.isnan(out.loc["v9_0", "p_shift"])


def test_context_audio_is_encoded_once_and_results_do_not_change(model_dir, wavs):
    predictor = TurnPredictor(model_dir)
    context = [{"text": "hello there", "speaker": 0, "audio": wavs / "b.wav"}]
    first = predictor.predict("how are you", wavs / "a.wav", 1, context)
    assert len(predictor._audio_cache) == 2
    again = predictor.predict("how are you", wavs / "a.wav", 1, context)
    assert again == first and len(predictor._audio_cache) == 2


@pytest.mark.parametrize("channels,encoders", [("mix", "frozen"), ("speaker", "frozen"), ("mix", "full"),
                                               ("speaker", "gradual")])
def test_predictor_gives_what_the_training_path_gives(tmp_path, channels, encoders):
    """Batch prediction from raw recordings and a CSV equals the training/evaluation path (segment store,
    token store, embedding cache or raw batches) on the same utterances: no train/serve skew."""
    p = pipeline.build(tmp_path, channels=channels, n_previous=1, audio_segments=3)
    model = TurnFusionModel.from_pretrained(p.model_dir).eval()
    cfg = params_config(TrainConfig, encoders=encoders, device="cpu", batch_size=4)
    trained_path = predict(model, examples_for(p.table, encoders, p.cache, p.tokens, p.store), cfg,
                           torch.device("cpu"))
    served = TurnPredictor(p.model_dir).predict_csv(p.csv, p.audio_dir).set_index("sentence_id")
    served = served.loc[p.table.sentence_id, ["p_keep", "p_shift", "p_backchannel"]].to_numpy()
    tolerance = 2e-3 if encoders == "frozen" else 1e-3  # the cache holds float16, the store int16 audio
    assert np.abs(served - trained_path).max() < tolerance
    assert trained_path.std(0).max() > 0.05  # the probabilities differ between utterances: a real comparison

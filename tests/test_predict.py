import json

import numpy as np
import pandas as pd
import pipeline
import pytest
import soundfile as sf
import torch
from conftest import params_config, save_toy_processor, tone, toy_config, utterance_table

from turnfusion.config import TrainConfig
from turnfusion.data.tokenize import train_tokenizer
from turnfusion.models import TurnFusionModel
from turnfusion.schema import DataError
from turnfusion.serving.cli import main as cli
from turnfusion.serving.predict import TurnPredictor
from turnfusion.training.loop import predict
from turnfusion.training.schedules import EncoderSchedule


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
    assert len(predictor.audio_memory) == 2
    again = predictor.predict("how are you", wavs / "a.wav", 1, context)
    assert again == first and len(predictor.audio_memory) == 2


@pytest.mark.parametrize("channels,encoders", [("mix", "frozen"), ("speaker", "frozen"), ("mix", "full"),
                                               ("speaker", "gradual")])
def test_predictor_gives_what_the_training_path_gives(tmp_path, channels, encoders):
    """Batch prediction from raw recordings and a CSV equals the training/evaluation path (segment store,
    token store, embedding cache or raw batches) on the same utterances: no train/serve skew."""
    p = pipeline.build(tmp_path, channels=channels, n_previous=1, audio_segments=3)
    model = TurnFusionModel.from_pretrained(p.model_dir).eval()
    inputs = EncoderSchedule.of(params_config(TrainConfig, encoders=encoders)).inputs
    trained_path = predict(model, inputs.examples(p.table, p.cache, p.tokens, p.store, model), 4, torch.device("cpu"),
                           inputs.collate)
    served = TurnPredictor(p.model_dir).predict_csv(p.csv, p.audio_dir).set_index("sentence_id")
    served = served.loc[p.table.sentence_id, ["p_keep", "p_shift", "p_backchannel"]].to_numpy()
    tolerance = 2e-3 if encoders == "frozen" else 1e-3  # the cache holds float16, the store int16 audio
    assert np.abs(served - trained_path).max() < tolerance
    assert trained_path.std(0).max() > 0.05  # the probabilities differ between utterances: a real comparison


def test_a_model_trained_without_words_predicts_every_row_as_training_saw_it_and_never_reads_text(tmp_path):
    p = pipeline.build(tmp_path, n_previous=1, audio_segments=3, words=False)
    model = TurnFusionModel.from_pretrained(p.model_dir).eval()
    inputs = EncoderSchedule.of(params_config(TrainConfig, encoders="frozen")).inputs
    assert len(p.table) == 16  # no row was dropped for having no words
    trained_path = predict(model, inputs.examples(p.table, p.cache, p.tokens, p.store, model), 4, torch.device("cpu"),
                           inputs.collate)
    predictor = TurnPredictor(p.model_dir)
    served = predictor.predict_csv(p.csv, p.audio_dir).set_index("sentence_id")
    assert (served.skipped == "").all()
    probs = served.loc[p.table.sentence_id, ["p_keep", "p_shift", "p_backchannel"]].to_numpy()
    assert np.abs(probs - trained_path).max() < 2e-3
    worded = pd.read_csv(p.csv).assign(text="so we went to the market")  # words it was not trained on: not read
    worded.to_csv(tmp_path / "worded.csv", index=False)
    again = predictor.predict_csv(tmp_path / "worded.csv", p.audio_dir).set_index("sentence_id")
    assert np.allclose(again.loc[p.table.sentence_id, ["p_keep", "p_shift", "p_backchannel"]].to_numpy(), probs)


def test_batch_keeps_every_input_row_and_counts_against_the_input(model_dir, recording_dir, tmp_path, capsys):
    rows = [("v1", f"v1_{i}", "hello there", i % 3, 0.3 * i, 0.3 * i + 0.3, i % 2) for i in range(12)]
    rows += [("", f"x_{i}", "no video", 0, 0.0, 1.0, 0) for i in range(3)]
    utterance_table(rows).to_csv(tmp_path / "u.csv", index=False)
    assert cli(["predict-csv", "--model", str(model_dir), "--csv", str(tmp_path / "u.csv"), "--audio-dir",
                str(recording_dir), "--out", str(tmp_path / "p.csv")]) == 0
    out = pd.read_csv(tmp_path / "p.csv", keep_default_na=False, na_values=[""])
    assert sorted(out.sentence_id) == sorted(r[1] for r in rows)
    assert (out.set_index("sentence_id").loc[[f"x_{i}" for i in range(3)], "skipped"] == "empty_video_id").all()
    assert "12 of 15 rows predicted; 3 empty_video_id" in capsys.readouterr().out


def test_non_finite_audio_is_an_error_alone_and_a_counted_skip_in_a_batch(model_dir, recording_dir, tmp_path):
    samples = tone(3, 16000)
    samples[8000] = np.inf
    with pytest.raises(DataError, match="current utterance: audio has non-finite samples"):
        TurnPredictor(model_dir).predict("hello there", samples, sample_rate=16000)
    sf.write(recording_dir / "bad.wav", samples, 16000, subtype="FLOAT")
    utterance_table([("bad", "a", "hello", 0, 0.0, 1.0, 0), ("bad", "b", "there", 0, 2.0, 3.0, 1)]).to_csv(
        tmp_path / "u.csv", index=False)
    out = TurnPredictor(model_dir).predict_csv(tmp_path / "u.csv", recording_dir).set_index("sentence_id")
    assert out.loc["a", "skipped"] == "non_finite_audio" and np.isnan(out.loc["a", "p_keep"])
    assert out.loc["b", "skipped"] == "" and np.isfinite(out.loc["b", "p_keep"])


def test_an_incomplete_or_foreign_model_directory_is_refused(model_dir, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    weights = {k: v for k, v in load_file(broken / "model.safetensors").items() if not k.startswith("head.")}
    save_file(weights, broken / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(DataError, match=r"broken: \d+ missing keys in the weights, e\.g\. head\."):
        TurnPredictor(broken)
    teacher = tmp_path / "teacher"
    from transformers import GPT2Config, GPT2LMHeadModel

    GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=8, n_head=2, vocab_size=50)).save_pretrained(teacher)
    with pytest.raises(DataError, match="teacher: a 'gpt2' model, not a turnfusion model"):
        TurnPredictor(teacher)


def test_cli_context_text_may_hold_colons_and_is_limited_to_what_the_model_reads(model_dir, wavs, capsys):
    from turnfusion.serving.cli import _context

    assert _context("0:time is 10:30") == {"speaker": 0, "text": "time is 10:30", "audio": None}
    assert _context(f"1:at 10:30 then:{wavs / 'b.wav'}")["audio"] == str(wavs / "b.wav")
    too_many = [arg for _ in range(3) for arg in ("--context", "0:hello there")]
    assert cli(["predict", "--model", str(model_dir), "--text", "hi", "--audio", str(wavs / "a.wav"), *too_many]) == 2
    assert "--context given 3 times, but this model uses at most 2" in capsys.readouterr().err


def test_text_model_still_checks_the_audio_it_is_given(tmp_path, capsys):
    tokenizer = train_tokenizer(["hello there how are you"] * 20, 300)
    model = TurnFusionModel(toy_config("text", {"vocab_size": len(tokenizer), "n_layer": 1, "n_embd": 16,
                                                "n_head": 2, "n_positions": 32}))
    model.save_pretrained(tmp_path / "text")
    tokenizer.save_pretrained(tmp_path / "text")
    save_toy_processor(tmp_path / "text", max_length=24)
    assert cli(["predict", "--model", str(tmp_path / "text"), "--text", "hi", "--audio", "/missing.wav"]) == 2
    assert "/missing.wav: recording not found" in capsys.readouterr().err
    assert cli(["predict", "--model", str(tmp_path / "text"), "--text", "hi"]) == 0


@pytest.mark.parametrize("case,message", [
    ("audio_dir", "audio folder not found"), ("out", "its folder does not exist"),
    ("header_only", "no utterance rows"), ("binary", "not a readable CSV")])
def test_predict_csv_input_problems_stop_before_the_work(model_dir, recording_dir, tmp_path, capsys, case, message):
    csv, audio_dir, out = tmp_path / "u.csv", recording_dir, tmp_path / "p.csv"
    utterance_table([("v1", "a", "hello", 0, 0.0, 1.0, 0)]).to_csv(csv, index=False)
    if case == "audio_dir":
        audio_dir = tmp_path / "raww"
    elif case == "out":
        out = tmp_path / "no" / "p.csv"
    elif case == "header_only":
        csv.write_text("video_id,sentence_id,text,label,start,end,speaker\n")
    else:
        csv.write_bytes(bytes(range(256)) * 4)
    assert cli(["predict-csv", "--model", str(model_dir), "--csv", str(csv), "--audio-dir", str(audio_dir),
                "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and not out.exists()


def test_fuzzed_csvs_lose_no_row(model_dir, recording_dir, tmp_path):
    """Random corruptions of a valid CSV: each run either stops with a DataError naming the file, or puts
    every input row in the output, predicted or skipped with a reason."""
    base = utterance_table([("v1", f"v1_{i}", "hello there", i % 3, 0.3 * i, 0.3 * i + 0.4, i % 2) for i in range(8)]
                           + [("v2", f"v2_{i}", "how are you", i % 3, 0.5 * i, 0.5 * i + 0.5, 0) for i in range(4)])
    rng = np.random.default_rng(0)
    predictor = TurnPredictor(model_dir)
    junk = ["", " ", "nan", "-1", "1e9", "abc", "?!", "3", "0.5", "inf", "\x00", ",,", '"']
    outcomes = {"rows kept": 0, "file refused": 0}
    for trial in range(25):
        table = base.astype(object).copy()
        for _ in range(rng.integers(1, 6)):
            table.iat[rng.integers(len(table)), rng.integers(table.shape[1])] = junk[rng.integers(len(junk))]
        table.to_csv(tmp_path / "u.csv", index=False)
        try:
            out = predictor.predict_csv(tmp_path / "u.csv", recording_dir)
        except DataError as exc:
            assert "u.csv" in str(exc)
            outcomes["file refused"] += 1
            continue
        given = pd.read_csv(tmp_path / "u.csv", dtype=str, keep_default_na=False).sentence_id.tolist()
        assert sorted(out.sentence_id.astype(str)) == sorted(given), trial
        done = out.skipped == ""
        assert out.loc[done, ["p_keep", "p_shift", "p_backchannel"]].notna().all().all()
        assert (out.loc[~done, "skipped"].str.len() > 0).all()
        outcomes["rows kept"] += 1
    assert outcomes["rows kept"] >= 5 and outcomes["file refused"] >= 1, outcomes


def test_predict_csv_orders_rows_as_they_were_spoken_never_by_file_order(model_dir, recording_dir, tmp_path):
    """Rows that tie on their times (windows of one turn) are ordered by what they say, so the context of a later row
    is the same whatever the file order (a mutant ordering ties by file order survived the suite before)."""
    rows = [("v1", "v1_a", "i went to the market", 0, 0.0, 1.0, 0),
            ("v1", "v1_b", "hello there how are you", 1, 0.0, 1.0, 0), ("v1", "v1_c", "and you", 0, 1.1, 1.6, 0),
            ("v1", "v1_d", "did you like it", 1, 2.0, 3.0, 1)]
    forward, backward = tmp_path / "forward.csv", tmp_path / "backward.csv"
    utterance_table(rows).to_csv(forward, index=False)
    utterance_table(rows[::-1]).to_csv(backward, index=False)
    predictor = TurnPredictor(model_dir)
    one = predictor.predict_csv(forward, recording_dir).set_index("sentence_id").sort_index()
    two = predictor.predict_csv(backward, recording_dir).set_index("sentence_id").sort_index()
    assert (one.skipped == "").all()
    pd.testing.assert_frame_equal(one, two)

import json

import numpy as np
import pandas as pd
import pytest

from turnfusion.errors import DataError
from turnfusion.evaluation.evaluate import (
    fit_trp_threshold,
    majority_baseline,
    per_class_f1_frame,
    predictions_frame,
    save_figures,
    slice_reports,
    tfidf_baseline,
    trp_baseline,
)
from turnfusion.evaluation.metrics import classification_report
from turnfusion.schema import KEEP, LABEL_NAMES, SHIFT


def test_majority_and_trp_baselines():
    probs = majority_baseline(np.array([0, 1, 1, 2]), 3)
    assert probs.argmax(1).tolist() == [1, 1, 1] and probs.sum(1).tolist() == [1, 1, 1]
    trp = np.array([0.1, 0.2, 0.7, 0.9, 0.15, 0.8])
    labels = np.array([KEEP, KEEP, SHIFT, SHIFT, KEEP, SHIFT])
    threshold = fit_trp_threshold(trp, labels)
    assert 0.2 <= threshold < 0.7
    assert trp_baseline(trp, threshold).argmax(1).tolist() == labels.tolist()


def test_figures_are_valid_non_empty_pngs(tmp_path):
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"sentence_id": [f"s{i}" for i in range(30)], "video_id": "v",
                          "label": rng.integers(0, 3, 30)})
    probs = {"text": rng.dirichlet([1, 1, 1], 30), "fusion": rng.dirichlet([1, 1, 1], 30)}
    predictions = pd.concat([predictions_frame(table, p, name) for name, p in probs.items()])
    fusion = predictions[predictions.model == "fusion"]
    assert fusion.prediction.tolist() == probs["fusion"].argmax(1).tolist()
    assert fusion.sentence_id.tolist() == table.sentence_id.tolist() and len(predictions) == 60
    reports = {name: classification_report(table.label.to_numpy(), p.argmax(1), p) for name, p in probs.items()}
    paths = save_figures(predictions, reports, tmp_path, "fusion")
    for path in paths:
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    f1 = per_class_f1_frame(reports)
    assert len(f1) == 6 and f1.f1.between(0, 1).all()


def test_tfidf_baseline_learns_words_on_train_and_picks_c_on_val():
    words = {0: "and then we went", 1: "what do you think", 2: "you know what i mean"}
    rng = np.random.default_rng(0)

    def split(n):
        labels = rng.integers(0, 3, n)
        return pd.DataFrame({"text": [f"{words[k]} {rng.choice(['today', 'there', 'again'])}" for k in labels],
                             "label": labels})

    train, val, test = split(60), split(20), split(30)
    probs, c = tfidf_baseline(train, val, test)
    assert probs.shape == (30, 3) and np.allclose(probs.sum(1), 1) and c in (0.1, 1.0, 10.0)
    assert (probs.argmax(1) == test.label.to_numpy()).all()
    # a class missing from train gets probability 0, in its own column
    probs, _ = tfidf_baseline(train[train.label != 2], val, test)
    assert probs[:, 2].max() == 0 and np.allclose(probs.sum(1), 1)


def test_slice_reports_score_each_model_on_the_overlap_and_channel_slices():
    table = pd.DataFrame({"label": [0, 1, 2, 2, 0, 1], "overlap": [False, False, True, True, False, False],
                          "stereo": [True, True, True, False, False, False]})
    perfect = np.eye(3)[table.label]
    hears_only_overlap = np.eye(3)[[0, 1, 2, 0, 0, 1]]  # finds the backchannel only where the listener is heard
    slices = slice_reports(table, {"perfect": perfect, "leaky": hears_only_overlap})
    assert slices["n"] == {"overlap": 2, "no_overlap": 4, "stereo": 3, "mono": 3, "mono_overlap": 1,
                           "mono_no_overlap": 2, "stereo_overlap": 1, "stereo_no_overlap": 2}
    assert all(s["macro_f1"] == 1.0 for s in slices["perfect"].values())
    assert slices["leaky"]["overlap"]["backchannel_recall"] == 0.5
    assert slices["leaky"]["overlap"]["macro_f1"] == 2 / 3  # backchannels only: their F1 (precision 1, recall 0.5)
    assert slices["leaky"]["no_overlap"]["backchannel_recall"] is None  # no backchannel in the slice
    assert slices["leaky"]["stereo"]["macro_f1"] == 1.0 and slices["leaky"]["mono"]["backchannel_recall"] == 0.0
    assert slices["leaky"]["mono_overlap"]["backchannel_recall"] == 0.0
    assert set(slice_reports(table.drop(columns="overlap"), {"perfect": perfect})["n"]) == {"stereo", "mono"}


def test_floor_inputs_give_each_row_its_context_and_the_rendering_of_its_own_segment(tmp_path):
    from pipeline import build

    from turnfusion.evaluation.evaluate import floor_inputs
    from turnfusion.evaluation.floors import RENDERING_COLUMNS, frame_levels

    pipe = build(tmp_path / "p")
    table = pipe.table.reset_index(drop=True)
    train, test = floor_inputs(table, table.iloc[::-1], pipe.tokens, pipe.store)
    contexts = pipe.tokens.index.set_index("sentence_id")["context"]
    assert (train.context == train.sentence_id.map(contexts)).all() and train.context.str.len().gt(0).all()
    own = int(table.audio_rows[0][0])  # the current utterance's segment, not a predecessor's
    assert train.r_seconds[0] == len(frame_levels(pipe.store.waveform(own), pipe.store.sample_rate)) * 0.02
    assert np.array_equal(test.loc[train.index, RENDERING_COLUMNS], train[RENDERING_COLUMNS])  # aligned by index
    assert (train.r_speech_s <= train.r_seconds).all() and train.r_speech_s.gt(0).any()


def test_each_model_is_fed_as_its_own_weights_say_not_as_the_training_params_say():
    import copy

    import torch
    from toy import toy_model

    from turnfusion.evaluation.evaluate import model_inputs
    from turnfusion.training.datasets import Inputs

    model = toy_model("fusion")
    cached = (copy.deepcopy(model.text_encoder), copy.deepcopy(model.audio_encoder))  # what embed ran
    assert model_inputs(model, cached) == Inputs(cached_text=True, cached_audio=True)
    with torch.no_grad():
        next(model.text_encoder.parameters()).add_(1e-3)  # the text encoder trained (train.encoders: text)
    assert model_inputs(model, cached) == Inputs(cached_text=False, cached_audio=True)
    with torch.no_grad():
        next(model.audio_encoder.parameters()).add_(1e-3)
    assert model_inputs(model, cached) == Inputs(cached_text=False, cached_audio=False)
    audio = toy_model("audio")
    assert model_inputs(audio, (cached[0], copy.deepcopy(audio.audio_encoder))) == Inputs(True, True)


def test_evaluate_end_to_end_reports_every_model_beside_its_floors_fitted_on_train(tmp_path):
    """evaluate() on a tiny store: each model, baseline and no-cue floor is scored on the test split, and the floors
    are fitted on train (mutants that fitted them on test, or dropped them from the report, survived the suite)."""
    from conftest import params_config
    from pipeline import build

    from turnfusion.config import TrainConfig
    from turnfusion.evaluation.evaluate import evaluate, floor_inputs, headline
    from turnfusion.evaluation.floors import FLOORS, floor_probabilities

    pipe = build(tmp_path / "p", splits=("train", "train", "val", "test"))
    trp = tmp_path / "trp.parquet"
    pipe.table[["sentence_id"]].assign(trp=np.linspace(0.1, 0.9, len(pipe.table))).to_parquet(trp)
    metrics = evaluate({"fusion": pipe.model_dir}, pipe.root / "segments", pipe.root / "tokens", trp, pipe.cache,
                       tmp_path / "out", params_config(TrainConfig, device="cpu", batch_size=4))
    test = pipe.table[pipe.table.split == "test"]
    assert metrics["test_utterances"] == len(test) > 0
    for name in ("fusion", "majority", "trp_threshold", "tfidf_logreg", *FLOORS):
        assert 0 <= metrics[name]["macro_f1"] <= 1, name
    figures = headline(metrics)  # what `dvc metrics show` compares: two figures a scorer, no per-class detail
    assert set(figures) == {"test_utterances", "fusion", "majority", "trp_threshold", "tfidf_logreg", *FLOORS}
    assert all(set(v) == {"macro_f1", "balanced_accuracy"} for k, v in figures.items() if k != "test_utterances")
    predictions = pd.read_parquet(tmp_path / "out" / "predictions.parquet")
    pairs = json.loads((tmp_path / "out" / "dvclive" / "plots" / "sklearn" / "confusion.json").read_text())
    fusion = predictions[predictions.model == "fusion"]  # the only model: the best one (DVC's confusion plot data)
    assert pairs == [{"actual": LABEL_NAMES[a], "predicted": LABEL_NAMES[b]}
                     for a, b in zip(fusion.label, fusion.prediction, strict=True)]
    edited = json.loads((pipe.model_dir / "preprocessor_config.json").read_text()) | {"n_previous": 2}
    (pipe.model_dir / "preprocessor_config.json").write_text(json.dumps(edited))  # not what made the test inputs
    with pytest.raises(DataError, match=r"model: its processor differs from the one that made the test inputs "
                                        r"\(.*tokens/preprocessor_config.json\): n_previous: 2 != 1; train it again"):
        evaluate({"fusion": pipe.model_dir}, pipe.root / "segments", pipe.root / "tokens", trp, pipe.cache,
                 tmp_path / "out2", params_config(TrainConfig, device="cpu", batch_size=4))
    train = pipe.table[pipe.table.split == "train"].reset_index(drop=True)
    want = floor_probabilities(*floor_inputs(train, test.reset_index(drop=True), pipe.tokens, pipe.store), 3)
    for name in FLOORS:
        got = predictions[predictions.model == name].sort_values("sentence_id")
        order = test.reset_index(drop=True).sort_values("sentence_id").index
        assert np.allclose(got[["p_keep", "p_shift", "p_backchannel"]].to_numpy(), want[name][order]), name


def test_evaluate_on_a_corpus_without_words_scores_every_row_beside_the_floors_and_no_text_baseline(tmp_path):
    from conftest import params_config
    from pipeline import build

    from turnfusion.config import TrainConfig
    from turnfusion.evaluation.evaluate import evaluate
    from turnfusion.evaluation.floors import FLOORS

    pipe = build(tmp_path / "p", splits=("train", "train", "val", "test"), words=False)
    trp = tmp_path / "trp.parquet"
    pipe.table[["sentence_id"]].assign(trp=np.linspace(0.1, 0.9, len(pipe.table))).to_parquet(trp)
    metrics = evaluate({"fusion": pipe.model_dir}, pipe.root / "segments", pipe.root / "tokens", trp, pipe.cache,
                       tmp_path / "out", params_config(TrainConfig, device="cpu", batch_size=4))
    assert metrics["words"] is False and "tfidf_logreg" not in metrics
    assert metrics["test_utterances"] == 4  # every row of the test split: none dropped for having no words
    for name in ("fusion", "majority", "trp_threshold", *FLOORS):
        assert 0 <= metrics[name]["macro_f1"] <= 1, name


def test_the_headline_keeps_two_figures_a_scorer():
    """`dvc metrics show` printed 551 columns (269 KB) when every report key was a metric; the headline keeps what
    answers "which run is better", the rest goes to report.json."""
    from turnfusion.evaluation.evaluate import headline

    scored = {"macro_f1": 0.81234, "balanced_accuracy": 0.8, "keep": {"f1": 0.7}, "min_class_f1": 0.6}
    report = {"test_utterances": 10, "fusion": scored, "skeleton_only": scored, "slices": {"overlap": scored}}
    assert headline(report) == {
        "test_utterances": 10, "fusion": {"macro_f1": 0.8123, "balanced_accuracy": 0.8},
        "skeleton_only": {"macro_f1": 0.8123, "balanced_accuracy": 0.8}}

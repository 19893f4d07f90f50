import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from turnfusion.corpus import TEXT_CUE_PROBS, utterance_text, LABEL_PROBS
from turnfusion.schema import KEEP, SHIFT, BACKCHANNEL
from turnfusion.teacher import fit_and_score, trp_histogram
from turnfusion.text import tokenize_table


def demo_dialogues(n_conversations: int, n_utterances: int, seed: int) -> pd.DataFrame:
    """Text-only dialogues from the demo corpus' generative spec (no audio needed)."""
    rng = np.random.default_rng(seed)
    rows = []
    labels, probs = list(LABEL_PROBS), list(LABEL_PROBS.values())
    for c in range(n_conversations):
        speaker = 0
        split = "train" if c < 0.6 * n_conversations else "val" if c < 0.8 * n_conversations else "test"
        for i in range(n_utterances):
            label = labels[rng.choice(3, p=probs)]
            cues = TEXT_CUE_PROBS[label]
            cue = list(cues)[rng.choice(len(cues), p=list(cues.values()))]
            rows.append((f"c{c}", f"c{c}_{i}", i, utterance_text(cue, rng), speaker, label, split))
            speaker = 1 - speaker if label == SHIFT else speaker
    return pd.DataFrame(rows, columns=["video_id", "sentence_id", "position", "text", "speaker", "label", "split"])


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("teacher")
    tokenize_table(demo_dialogues(50, 30, seed=0), work / "tokens", "train", 512, 48)
    runs = [fit_and_score(work / "tokens", work / f"model{k}", None, 2, 64, 2, 48, epochs=8, batch_size=32,
                          lr=3e-3, seed=0, device="cpu", progress=False) for k in range(2)]
    return runs


def test_trp_is_a_probability_for_every_utterance(teacher_run):
    table, metrics = teacher_run[0]
    assert len(table) == 1500 and table.trp.between(0, 1).all()
    assert set(table.split) == {"train", "val", "test"}
    assert 1 < metrics["val_perplexity"] < 50


def test_same_trp_twice_under_the_same_seed(teacher_run):
    (a, ma), (b, mb) = teacher_run
    assert np.array_equal(a.trp.to_numpy(), b.trp.to_numpy()) and ma == mb


def test_learnt_trp_separates_turn_from_keep(teacher_run):
    table, metrics = teacher_run[0]
    test = table[(table.split == "test") & table.label.isin([KEEP, SHIFT])]
    auc = roc_auc_score(test.label == SHIFT, test.trp)
    assert auc == pytest.approx(metrics["test"]["trp_auc_shift_vs_keep"], abs=1e-4)
    assert auc > 0.7  # a random (untrained) teacher scores about 0.5
    assert metrics["test"]["mean_trp_shift"] > 2 * metrics["test"]["mean_trp_keep"]


def test_untrained_teacher_does_not_separate(tmp_path):
    tokenize_table(demo_dialogues(20, 30, seed=1), tmp_path / "tokens", "train", 512, 48)
    table, _ = fit_and_score(tmp_path / "tokens", tmp_path / "m", None, 2, 64, 2, 48, epochs=0, batch_size=32,
                             lr=1e-3, seed=0, device="cpu", progress=False)
    test = table[table.label.isin([KEEP, SHIFT])]
    assert abs(roc_auc_score(test.label == SHIFT, test.trp) - 0.5) < 0.15


def test_histogram_rows_are_shares_per_class():
    hist = trp_histogram(np.array([0.01, 0.5, 0.99, 0.98]), np.array([KEEP, SHIFT, SHIFT, BACKCHANNEL]))
    assert hist[["keep", "shift", "backchannel"]].sum().tolist() == [1.0, 1.0, 1.0]
    assert hist.keep.iat[0] == 1.0 and hist["shift"].iat[-1] == 0.5


def test_crossfitted_train_trp_comes_from_other_teachers(teacher_run, tmp_path_factory):
    in_sample, _ = teacher_run[0]
    work = tmp_path_factory.getbasetemp() / "teacher0"
    crossfit, metrics = fit_and_score(work / "tokens", tmp_path_factory.mktemp("cf") / "m", None, 2, 64, 2, 48,
                                      epochs=8, batch_size=32, lr=3e-3, seed=0, device="cpu", progress=False,
                                      crossfit_folds=2)
    train = (crossfit.split == "train").to_numpy()
    assert np.array_equal(crossfit.trp[~train], in_sample.trp[~train])  # val/test: the full teacher
    assert not np.allclose(crossfit.trp[train], in_sample.trp[train])
    assert crossfit.trp.between(0, 1).all() and "train" in metrics

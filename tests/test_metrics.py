import numpy as np
import pytest

from turnfusion.evaluation.metrics import classification_report


def test_metrics_on_a_known_vector():
    report = classification_report(np.array([0, 0, 1, 1, 2, 2]), np.array([0, 0, 1, 0, 2, 1]))
    assert report["keep"]["precision"] == pytest.approx(2 / 3)
    assert report["shift"]["recall"] == 0.5
    assert report["balanced_accuracy"] == pytest.approx((1 + 0.5 + 0.5) / 3)
    assert report["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)  # keep 2/3 & 1 -> 0.8; shift 0.5; bc 2/3
    assert report["min_class_f1"] == pytest.approx(0.5)


def test_pr_auc_per_class_from_probabilities():
    labels = np.array([0, 0, 1, 1, 2, 2])
    probs = np.array([[.9, .05, .05], [.8, .1, .1], [.1, .8, .1], [.6, .15, .25], [.1, .1, .8], [.1, .2, .7]])
    report = classification_report(labels, probs.argmax(1), probs)
    assert report["keep"]["pr_auc"] == pytest.approx(1.0) and report["backchannel"]["pr_auc"] == pytest.approx(1.0)
    # shift ranking: row 2 (shift), row 5 (not), row 3 (shift) -> AP = (1 + 2/3) / 2
    assert report["shift"]["pr_auc"] == pytest.approx((1 + 2 / 3) / 2)


def probabilities_for(shift_scores):
    """Rows whose P(shift) / (P(shift) + P(keep)) is the given score, with P(backchannel) 0.2."""
    scores = np.asarray(shift_scores)
    return np.stack([0.8 * (1 - scores), 0.8 * scores, np.full(len(scores), 0.2)], axis=1)


@pytest.mark.parametrize("keep, shift, eer, auc", [
    ([0.1, 0.2, 0.3, 0.6], [0.5, 0.7, 0.8, 0.9], 0.25, 15 / 16),  # one keep above one shift
    ([0.1, 0.2], [0.8, 0.9], 0.0, 1.0),
    ([0.8, 0.9], [0.1, 0.2], 1.0, 0.0),
    ([0.5, 0.5], [0.5, 0.5], 0.5, 0.5),  # a constant score (the majority baseline) tells nothing
])
def test_shift_vs_keep_roc_auc_and_equal_error_rate(keep, shift, eer, auc):
    labels = np.array([0] * len(keep) + [1] * len(shift) + [2])
    probs = np.vstack([probabilities_for(keep + shift), [[0.1, 0.1, 0.8]]])  # a backchannel row: not scored
    report = classification_report(labels, probs.argmax(1), probs)
    assert report["shift_vs_keep"]["eer"] == pytest.approx(eer)
    assert report["shift_vs_keep"]["roc_auc"] == pytest.approx(auc)
    assert report["backchannel"]["roc_auc"] == pytest.approx(1.0)  # one-vs-rest: its row has the top P(bc)


def test_no_roc_figures_where_a_class_or_the_pair_is_missing():
    labels = np.array([0, 0, 2])
    report = classification_report(labels, labels, np.array([[.8, .1, .1], [.7, .2, .1], [.1, .1, .8]]))
    assert "shift_vs_keep" not in report and "roc_auc" not in report["shift"]
    assert report["keep"]["roc_auc"] == pytest.approx(1.0)

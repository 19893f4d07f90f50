import numpy as np
import pytest

from turnfusion.metrics import classification_report


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

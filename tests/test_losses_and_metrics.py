import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import balanced_accuracy_score, f1_score, precision_recall_fscore_support

from turnfusion.losses import distillation_loss, focal_loss
from turnfusion.metrics import classification_report


def test_focal_equals_cross_entropy_at_gamma_zero_with_uniform_alpha():
    torch.manual_seed(0)
    logits, target = torch.randn(64, 3), torch.randint(0, 3, (64,))
    ce = F.cross_entropy(logits, target)
    assert torch.allclose(focal_loss(logits, target, None, gamma=0.0), ce)
    assert torch.allclose(focal_loss(logits, target, torch.ones(3), gamma=0.0), ce)


def test_focal_is_a_per_sample_mean_that_down_weights_easy_examples():
    logits = torch.tensor([[5.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    target = torch.tensor([0, 0])
    per_sample = [focal_loss(logits[i:i + 1], target[i:i + 1], None, 2.0) for i in range(2)]
    assert torch.allclose(focal_loss(logits, target, None, 2.0), (per_sample[0] + per_sample[1]) / 2)
    assert per_sample[0] < 0.01 * per_sample[1]
    alpha = torch.tensor([2.0, 1.0, 1.0])
    assert torch.allclose(focal_loss(logits, target, alpha, 2.0), 2 * focal_loss(logits, target, None, 2.0))


def test_distillation_pulls_p_shift_towards_trp():
    logits = torch.tensor([[0.0, 3.0, 0.0]])
    assert distillation_loss(logits, torch.tensor([0.9])) < distillation_loss(logits, torch.tensor([0.1]))


def test_metrics_equal_scikit_learn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 200)
    pred = np.where(rng.random(200) < 0.6, y, rng.integers(0, 3, 200))
    probs = np.eye(3)[pred] * 0.7 + 0.1
    report = classification_report(y, pred, probs)
    assert report["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert report["weighted_f1"] == pytest.approx(f1_score(y, pred, average="weighted"))
    assert report["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))
    p, r, f, s = precision_recall_fscore_support(y, pred)
    assert [report[n]["f1"] for n in ("keep", "shift", "backchannel")] == pytest.approx(list(f))
    assert [report[n]["support"] for n in ("keep", "shift", "backchannel")] == list(s)
    assert report["min_class_f1"] == pytest.approx(f.min())
    assert 0 < report["shift"]["pr_auc"] <= 1


def test_metrics_on_a_known_vector():
    report = classification_report(np.array([0, 0, 1, 1, 2, 2]), np.array([0, 0, 1, 0, 2, 1]))
    assert report["keep"]["precision"] == pytest.approx(2 / 3)
    assert report["shift"]["recall"] == 0.5
    assert report["balanced_accuracy"] == pytest.approx((1 + 0.5 + 0.5) / 3)

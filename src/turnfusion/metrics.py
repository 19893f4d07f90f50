"""Classification metrics, all from scikit-learn."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)

from turnfusion.schema import LABEL_NAMES


def classification_report(labels: np.ndarray, predictions: np.ndarray, probabilities: np.ndarray | None = None) -> dict:
    """Per-class precision/recall/F1/support, macro and weighted F1, balanced accuracy, min per-class F1,
    and per-class PR-AUC (average precision, one-vs-rest) when probabilities are given."""
    classes = list(LABEL_NAMES)
    p, r, f, s = precision_recall_fscore_support(labels, predictions, labels=classes, zero_division=0)
    report = {
        "macro_f1": float(f1_score(labels, predictions, labels=classes, average="macro", zero_division=0)),
        "weighted_f1": float(f1_score(labels, predictions, labels=classes, average="weighted", zero_division=0)),
        "balanced_accuracy": float(balanced_accuracy_score(labels, predictions)),
        "min_class_f1": float(f.min()),
    }
    for k, name in LABEL_NAMES.items():
        report[name] = {"precision": float(p[k]), "recall": float(r[k]), "f1": float(f[k]), "support": int(s[k])}
        if probabilities is not None and s[k] > 0:
            report[name]["pr_auc"] = float(average_precision_score(labels == k, probabilities[:, k]))
    return report


def confusion(labels: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    return confusion_matrix(labels, predictions, labels=list(LABEL_NAMES))

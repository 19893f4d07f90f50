"""Classification metrics, all from scikit-learn."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)

from turnfusion.schema import KEEP, LABEL_NAMES, SHIFT


def classification_report(labels: np.ndarray, predictions: np.ndarray, probabilities: np.ndarray | None = None) -> dict:
    """Per-class precision/recall/F1/support, macro and weighted F1, balanced accuracy, min per-class F1; with
    probabilities also per-class PR-AUC (average precision) and ROC-AUC, one-vs-rest, and the shift-vs-keep
    ROC-AUC and equal error rate (`shift_vs_keep`), as the turn-taking literature reports them."""
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
        if probabilities is not None and 0 < s[k] < len(labels):
            report[name]["pr_auc"] = float(average_precision_score(labels == k, probabilities[:, k]))
            report[name]["roc_auc"] = float(roc_auc_score(labels == k, probabilities[:, k]))
    if probabilities is not None:
        binary = np.isin(labels, [KEEP, SHIFT])
        if len(set(labels[binary])) == 2:
            report["shift_vs_keep"] = shift_vs_keep(labels[binary] == SHIFT, probabilities[binary])
    return report


def shift_vs_keep(is_shift: np.ndarray, probabilities: np.ndarray) -> dict:
    """ROC-AUC and equal error rate of shift vs keep, on rows that are one of the two, scored by
    P(shift) / (P(shift) + P(keep)). The EER is where the false-shift rate meets the missed-shift rate (the ROC
    point where the two are closest, their mean)."""
    pair = probabilities[:, SHIFT] + probabilities[:, KEEP]
    score = np.divide(probabilities[:, SHIFT], pair, out=np.full(len(pair), 0.5), where=pair > 0)
    false_shift, hit, _ = roc_curve(is_shift, score)
    missed = 1 - hit
    i = int(np.argmin(np.abs(missed - false_shift)))
    return {"roc_auc": float(roc_auc_score(is_shift, score)), "eer": float((false_shift[i] + missed[i]) / 2)}


def confusion(labels: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    return confusion_matrix(labels, predictions, labels=list(LABEL_NAMES))

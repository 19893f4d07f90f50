"""Stage `evaluate`: test-split predictions of every model and baseline, their metrics and the figures people
look at."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from turnfusion.datasets import examples_for, load_utterances
from turnfusion.loop import pick_device
from turnfusion.metrics import classification_report, confusion
from turnfusion.predict import load_model
from turnfusion.schema import KEEP, LABEL_NAMES, SHIFT
from turnfusion.train import predict

if TYPE_CHECKING:
    from turnfusion.config import ModelConfig, TrainConfig

PROB_COLUMNS = [f"p_{name}" for name in LABEL_NAMES.values()]
BASELINES = ("majority", "trp_threshold", "tfidf_logreg")


def predictions_frame(table: pd.DataFrame, probabilities: np.ndarray, model: str) -> pd.DataFrame:
    """Per-utterance predictions: ids, label, class probabilities, predicted class."""
    out = table[["sentence_id", "video_id", "label"]].reset_index(drop=True).copy()
    out[PROB_COLUMNS] = probabilities
    out["prediction"] = probabilities.argmax(1)
    out["model"] = model
    return out


def majority_baseline(train_labels: np.ndarray, n: int) -> np.ndarray:
    """Probabilities that always put all mass on the most frequent training class."""
    probs = np.zeros((n, len(LABEL_NAMES)))
    probs[:, np.bincount(train_labels, minlength=len(LABEL_NAMES)).argmax()] = 1.0
    return probs


def fit_trp_threshold(trp: np.ndarray, labels: np.ndarray) -> float:
    """Threshold on the teacher's TRP (shift above, keep below) that maximises macro F1 on the given set."""
    from sklearn.metrics import f1_score

    candidates = np.unique(np.quantile(trp, np.linspace(0.01, 0.99, 99)))
    scores = [f1_score(labels, np.where(trp > c, SHIFT, KEEP), labels=list(LABEL_NAMES), average="macro",
                       zero_division=0) for c in candidates]
    return float(candidates[int(np.argmax(scores))])


def tfidf_baseline(train: pd.DataFrame, val: pd.DataFrame, test: pd.DataFrame,
                   c_grid: tuple[float, ...] = (0.1, 1.0, 10.0)) -> tuple[np.ndarray, float]:
    """(test probabilities, the C chosen) of the classic text baseline: TF-IDF of each utterance's words
    (1-2 grams) and a class-balanced logistic regression fitted on train, its C chosen by macro F1 on val."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.pipeline import make_pipeline

    def fitted(c: float):
        model = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
                              LogisticRegression(C=c, class_weight="balanced", max_iter=2000))
        return model.fit(train.text, train.label)

    scores = {c: f1_score(val.label, fitted(c).predict(val.text), average="macro") for c in c_grid}
    best = max(scores, key=scores.get)
    model = fitted(best)
    probs = np.zeros((len(test), len(LABEL_NAMES)))
    probs[:, model.classes_] = model.predict_proba(test.text)
    return probs, best


def trp_baseline(trp: np.ndarray, threshold: float) -> np.ndarray:
    probs = np.zeros((len(trp), len(LABEL_NAMES)))
    probs[np.arange(len(trp)), np.where(trp > threshold, SHIFT, KEEP)] = 1.0
    return probs


def per_class_f1_frame(reports: dict[str, dict]) -> pd.DataFrame:
    return pd.DataFrame([{"model": model, "class": name, "f1": report[name]["f1"]}
                         for model, report in reports.items() for name in LABEL_NAMES.values()])


def save_figures(predictions: pd.DataFrame, reports: dict[str, dict], out_dir: Path, model: str) -> list[Path]:
    """PNG figures for people who open the folder: confusion matrix of `model`, per-class F1 of all models."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    chosen = predictions[predictions.model == model]
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ConfusionMatrixDisplay(confusion(chosen.label.to_numpy(), chosen.prediction.to_numpy()),
                           display_labels=list(LABEL_NAMES.values())).plot(ax=ax, colorbar=False)
    ax.set_title(f"{model}: test confusion matrix")
    fig.tight_layout()
    paths = [out_dir / "confusion_matrix.png"]
    fig.savefig(paths[0], dpi=120)
    plt.close(fig)
    table = per_class_f1_frame(reports).pivot(index="model", columns="class", values="f1")
    table = table.loc[list(reports), list(LABEL_NAMES.values())]
    ax = table.plot.bar(figsize=(7, 4), ylim=(0, 1), rot=0)
    ax.set_ylabel("F1 (test)")
    ax.set_title("Per-class F1 by model")
    ax.figure.tight_layout()
    paths.append(out_dir / "per_class_f1.png")
    ax.figure.savefig(paths[1], dpi=120)
    plt.close(ax.figure)
    return paths


def evaluate(models: dict[str, Path], segments: Path, tokens: Path, trp: Path, embeddings: Path, out_dir: Path,
             model_cfg: ModelConfig, train_cfg: TrainConfig) -> dict:
    """The evaluate stage: test predictions of every model (`{name: directory}`) and of the baselines, metrics,
    DVC plot data and PNGs in `out_dir`. Returns the metrics."""
    store, token_store, table = load_utterances(segments, tokens, trp, model_cfg.audio_segments)
    test, train, val = (table[table.split == s].reset_index(drop=True) for s in ("test", "train", "val"))
    examples = examples_for(test, train_cfg.encoders, embeddings, token_store, store)
    probabilities = {"majority": majority_baseline(train.label.to_numpy(), len(test))}
    threshold = fit_trp_threshold(val.trp.to_numpy(), val.label.to_numpy())
    probabilities["trp_threshold"] = trp_baseline(test.trp.to_numpy(), threshold)
    probabilities["tfidf_logreg"], tfidf_c = tfidf_baseline(train, val, test)
    device = pick_device(train_cfg.device)
    for name, directory in models.items():
        model = load_model(directory).to(device)
        probabilities[name] = predict(model, examples, train_cfg, device, progress=True)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    predictions = pd.concat([predictions_frame(test, p, name) for name, p in probabilities.items()])
    predictions.to_parquet(out / "predictions.parquet", index=False)
    labels = test.label.to_numpy()
    reports = {name: classification_report(labels, p.argmax(1), p) for name, p in probabilities.items()}
    reports["trp_threshold"]["threshold"] = threshold
    reports["tfidf_logreg"]["C"] = tfidf_c
    best = max((k for k in probabilities if k not in BASELINES), default="majority",
               key=lambda k: reports[k]["macro_f1"])
    chosen = predictions[predictions.model == best]
    pairs = [{"actual": int(a), "predicted": int(b)} for a, b in zip(chosen.label, chosen.prediction, strict=True)]
    (out / "confusion.json").write_text(json.dumps(pairs, indent=2) + "\n")
    per_class_f1_frame(reports).to_csv(out / "per_class_f1.csv", index=False)
    save_figures(predictions, reports, out, best)
    return {"test_utterances": len(test), **reports}

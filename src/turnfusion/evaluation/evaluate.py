"""Stage `evaluate`: test-split predictions of every model and baseline, their metrics and the figures people
look at."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import f1_score

from dvclive import Live
from turnfusion.errors import DataError
from turnfusion.evaluation.floors import FLOORS, floor_probabilities, frame_levels, rendering_features, speech_threshold
from turnfusion.evaluation.metrics import classification_report, confusion
from turnfusion.schema import BACKCHANNEL, KEEP, LABEL_NAMES, SHIFT, corpus_has_words
from turnfusion.serving.predict import load_model
from turnfusion.serving.processing import PROCESSOR_FILE, ProcessorConfig
from turnfusion.training.datasets import Inputs, load_utterances
from turnfusion.training.encoders import load_encoders
from turnfusion.training.loop import pick_device, predict

if TYPE_CHECKING:
    from turnfusion.config import TrainConfig
    from turnfusion.data.stores import PackedTokens, SegmentStore

PROB_COLUMNS = [f"p_{name}" for name in LABEL_NAMES.values()]
BASELINES = ("majority", "trp_threshold", "tfidf_logreg", *FLOORS)  # FLOORS: inputs without a turn-taking cue


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


SLICES = {"overlap": {"overlap": True}, "no_overlap": {"overlap": False}, "stereo": {"stereo": True},
          "mono": {"stereo": False}, "mono_overlap": {"stereo": False, "overlap": True},
          "mono_no_overlap": {"stereo": False, "overlap": False}, "stereo_overlap": {"stereo": True, "overlap": True},
          "stereo_no_overlap": {"stereo": True, "overlap": False}}


def slice_reports(table: pd.DataFrame, probabilities: dict[str, np.ndarray]) -> dict:
    """Macro F1 and backchannel recall (`slice_scores`) of every model on slices of `table`: rows whose last
    `segment.LISTENER_WINDOW_S` has the listener in it (`overlap`, where mixed audio would hold the answer) or
    not, rows of stereo vs mono recordings, and their crossings; `n` gives each slice's size. Slices on a
    column the segment store lacks are left out."""
    slices = {name: np.logical_and.reduce([(table[c] == v).to_numpy() for c, v in where.items()])
              for name, where in SLICES.items() if set(where) <= set(table.columns)}
    labels = table.label.to_numpy()
    out = {"n": {name: int(rows.sum()) for name, rows in slices.items()}}
    for model, probs in probabilities.items():
        predicted = probs.argmax(1)
        out[model] = {name: slice_scores(labels[rows], predicted[rows]) for name, rows in slices.items() if rows.any()}
    return out


def slice_scores(labels: np.ndarray, predicted: np.ndarray) -> dict:
    """Macro F1 over the classes the slice has (a slice of backchannels only: their F1) and backchannel recall
    (None: no backchannel in the slice)."""
    backchannels = labels == BACKCHANNEL
    recall = float((predicted[backchannels] == BACKCHANNEL).mean()) if backchannels.any() else None
    return {"macro_f1": float(f1_score(labels, predicted, labels=np.unique(labels), average="macro",
                                       zero_division=0)),
            "backchannel_recall": recall}


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


def floor_inputs(train: pd.DataFrame, test: pd.DataFrame, tokens: PackedTokens,
                 store: SegmentStore) -> list[pd.DataFrame]:
    """`train` and `test` with what the no-cue floors read: each row's context string and the rendering features
    of its own segment (`floors.rendering_features`, the speech threshold set on train)."""
    contexts = tokens.index.set_index("sentence_id")["context"]
    levels = [[frame_levels(store.waveform(int(rows[0])), store.sample_rate) for rows in t.audio_rows]
              for t in (train, test)]
    threshold = speech_threshold(levels[0])
    return [t.assign(context=t.sentence_id.map(contexts),
                     **rendering_features(lv, t.text, threshold)
                     .set_index(t.index))
            for t, lv in zip((train, test), levels, strict=True)]


def model_inputs(model, cached_encoders) -> Inputs:
    """How to feed a trained model, read from its own weights: an encoder that is still the embed stage's
    (`cached_encoders`, as after `train.encoders: frozen`) reads the cache, one that trained reads token ids or
    waveforms through the model's own encoder."""
    def unchanged(mine, theirs) -> bool:
        a, b = mine.state_dict(), theirs.state_dict()
        return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    text, audio = cached_encoders
    return Inputs(cached_text=not model.config.uses_text or unchanged(model.text_encoder, text),
                  cached_audio=not model.config.uses_audio or unchanged(model.audio_encoder, audio))


def own_history(table: pd.DataFrame, model) -> pd.DataFrame:
    """`table` with each row's audio history cut to the segments `model` reads (`history`: the first k rows of a
    longer history are the history of k)."""
    return table.assign(audio_rows=[rows[: model.config.audio_segments] for rows in table.audio_rows])


def test_inputs(models: dict[str, Path], segments: Path, tokens: Path, trp: Path) -> tuple:
    """(the loaded models `{name: (model, processor)}`, the segment store, the token store, every utterance with its
    inputs' rows): refused with a one-line error when a model's processor is not the one that made the stores."""
    loaded = {name: load_model(directory) for name, directory in models.items()}
    most_segments = max((m.config.audio_segments for m, _ in loaded.values()), default=1)
    store, token_store, table = load_utterances(segments, tokens, trp, most_segments)
    made_with = ProcessorConfig.of_token_store(tokens, store.audio_policy())
    for name, (_, processor) in loaded.items():  # the stores hold the inputs as the model's processor makes them
        differ = processor.config.differences(made_with)
        if differ:
            raise DataError(f"{models[name]}: its processor differs from the one that made the test inputs "
                            f"({Path(tokens) / PROCESSOR_FILE}): {'; '.join(differ)}; train it again")
    return loaded, store, token_store, table


def evaluate(models: dict[str, Path], segments: Path, tokens: Path, trp: Path, embeddings: Path, out_dir: Path,
             train_cfg: TrainConfig) -> dict:
    """The evaluate stage: test predictions of every model (`{name: directory}`, each fed as its own config and
    weights say) and of the baselines, metrics, DVC plot data and PNGs in `out_dir`. Returns the metrics. A corpus
    without words (`words: false`) has no TF-IDF baseline, and its text model reads the speaker turns alone (the
    skeleton floor's input)."""
    loaded, store, token_store, table = test_inputs(models, segments, tokens, trp)
    test, train, val = (table[table.split == s].reset_index(drop=True) for s in ("test", "train", "val"))
    probabilities = {"majority": majority_baseline(train.label.to_numpy(), len(test))}
    threshold = fit_trp_threshold(val.trp.to_numpy(), val.label.to_numpy())
    probabilities["trp_threshold"] = trp_baseline(test.trp.to_numpy(), threshold)
    words = corpus_has_words(table)  # without words (no transcripts) the text baseline has nothing to read
    if words:
        probabilities["tfidf_logreg"], tfidf_c = tfidf_baseline(train, val, test)
    probabilities.update(floor_probabilities(*floor_inputs(train, test, token_store, store), len(LABEL_NAMES)))
    device, cached_encoders = pick_device(train_cfg.device), load_encoders(embeddings)
    for name, (model, _) in loaded.items():
        inputs = model_inputs(model, cached_encoders)
        probabilities[name] = predict(model.to(device),
                                      inputs.examples(own_history(test, model), embeddings, token_store, store, model),
                                      train_cfg.batch_size, device, inputs.collate, progress=True)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    predictions = pd.concat([predictions_frame(test, p, name) for name, p in probabilities.items()])
    predictions.to_parquet(out / "predictions.parquet", index=False)
    labels = test.label.to_numpy()
    reports = {name: classification_report(labels, p.argmax(1), p) for name, p in probabilities.items()}
    reports["trp_threshold"]["threshold"] = threshold
    if words:
        reports["tfidf_logreg"]["C"] = tfidf_c
    best = max((k for k in probabilities if k not in BASELINES), default="majority",
               key=lambda k: reports[k]["macro_f1"])
    chosen = predictions[predictions.model == best]
    with Live(str(out / "dvclive"), dvcyaml=False, save_dvc_exp=False) as live:  # DVC plot data (dvc.yaml `plots`)
        live.log_sklearn_plot("confusion_matrix", chosen.label.map(LABEL_NAMES).tolist(),
                              chosen.prediction.map(LABEL_NAMES).tolist(), name="confusion.json")
    per_class_f1_frame(reports).to_csv(out / "per_class_f1.csv", index=False)
    save_figures(predictions, reports, out, best)
    return {"test_utterances": len(test), "words": words, **reports, "slices": slice_reports(test, probabilities)}


def headline(report: dict) -> dict:
    """The figures `dvc metrics show` / `diff` compare (reports/evaluate/metrics.json): test macro F1 and balanced
    accuracy of every model, baseline and no-cue floor; the whole `report` (per class, slices, thresholds) is written
    beside it as report.json. What deployment changes is the parity stage's (`parity.headline`)."""
    figures = {"test_utterances": report["test_utterances"]}
    figures.update({name: {"macro_f1": round(r["macro_f1"], 4), "balanced_accuracy": round(r["balanced_accuracy"], 4)}
                    for name, r in report.items() if isinstance(r, dict) and "macro_f1" in r})
    return figures

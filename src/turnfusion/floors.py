"""No-cue floors: what a classifier reaches from inputs that carry no turn-taking cue, so that every model's figure
is read beside them. A corpus's sampling design leaves structure that is not a cue (MM-F2F cuts a keep window and
a shift row from each turn, so an utterance's duration says something about its label); a model that does not
beat these floors has learnt that structure, not turn-taking.

- `skeleton_only`: the context without its words, its speaker and `<ts>` tokens (n-grams of them);
- `duration_only`: the utterance's annotated duration (seconds and its log).

Each is a class-balanced logistic regression (scikit-learn), fitted on train and scored like the models.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.model_selection import GroupKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

FLOORS = ("skeleton_only", "duration_only")


def skeleton(context: str) -> str:
    """What a context says without its words: its speaker and turn-shift tokens, in order."""
    return " ".join(token for token in context.split() if token.startswith("<") and token.endswith(">"))


def _durations(table: pd.DataFrame) -> np.ndarray:
    seconds = (table["end"].to_numpy(float) - table["start"].to_numpy(float)).clip(min=1e-3)
    return np.stack([seconds, np.log(seconds)], axis=1)


def floor_classifier(name: str, seed: int = 0):
    """The classifier of one floor, taking a table (columns context, start, end) as its input."""
    regression = LogisticRegression(max_iter=2000, class_weight="balanced", random_state=seed)
    if name == "skeleton_only":
        return make_pipeline(FunctionTransformer(lambda t: t["context"].map(skeleton)),
                             CountVectorizer(token_pattern=r"\S+", ngram_range=(1, 3), lowercase=False), regression)
    if name == "duration_only":
        return make_pipeline(FunctionTransformer(_durations), StandardScaler(), regression)
    raise ValueError(f"unknown floor {name!r}; one of {FLOORS}")


def floor_probabilities(train: pd.DataFrame, test: pd.DataFrame, n_classes: int, seed: int = 0) -> dict:
    """{floor: test class probabilities (n, n_classes)} of each floor fitted on `train` (context, start, end,
    label). A class absent from train gets probability 0."""
    result = {}
    for name in FLOORS:
        fitted = floor_classifier(name, seed).fit(train, train["label"])
        probs = np.zeros((len(test), n_classes))
        probs[:, fitted.classes_] = fitted.predict_proba(test)
        result[name] = probs
    return result


def cross_validated_macro_f1(classifier, table: pd.DataFrame, folds: int = 5) -> float:
    """Macro F1 of `classifier` (fitted on `table`-like input) over `folds` folds grouped by video."""
    predicted = cross_val_predict(classifier, table, table["label"], groups=table["video_id"], cv=GroupKFold(folds))
    return float(f1_score(table["label"], predicted, average="macro"))

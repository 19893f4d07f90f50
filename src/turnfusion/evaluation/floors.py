"""No-cue floors: what a classifier reaches from inputs that carry no turn-taking cue, so that every model's figure
is read beside them. A corpus's sampling design leaves structure that is not a cue (MM-F2F cuts a keep window and
a shift row from each turn, so an utterance's duration says something about its label); a model that does not
beat these floors has learnt that structure, not turn-taking.

- `skeleton_only`: the context without its words, its speaker and `<ts>` tokens (n-grams of them);
- `duration_only`: the utterance's annotated duration (seconds and its log);
- `rendering_only`: the layout of the audio a model is given, not its content: seconds, seconds of speech and
  their share, silence before and after the speech, words per second of speech. On synthetic audio (the demo
  corpus, the MM-F2F rehearsal) this is what the rendering says about the label; on real audio it is a
  speech-activity baseline (pauses and speaking rate are real cues there).

Each is a class-balanced logistic regression (scikit-learn), fitted on train and scored like the models; a floor
whose inputs a table lacks (`FLOOR_INPUTS`) is left out.
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

from turnfusion.text.words import OTHER_MARK, OWN_MARK, PAIR_SEPARATOR

FRAME_S = 0.02
RENDERING_COLUMNS = ["r_seconds", "r_speech_s", "r_speech_share", "r_lead_s", "r_tail_s", "r_words_per_s"]
FLOOR_INPUTS = {"skeleton_only": ["context"], "duration_only": ["start", "end"], "rendering_only": RENDERING_COLUMNS}
FLOORS = tuple(FLOOR_INPUTS)
TEXT_FLOORS = ("skeleton_only", "duration_only")  # from an annotation table alone


def skeleton(context: str) -> str:
    """What a context says without its words: its speaker and turn-shift tokens, in order; of a pair
    (`text.input_form: pair`), its history's speaker marks and where the current utterance starts."""
    if PAIR_SEPARATOR in context:
        history = context.split(PAIR_SEPARATOR)[0].split()
        return " ".join([t for t in history if t in (OWN_MARK, OTHER_MARK)] + ["<current>"])
    return " ".join(token for token in context.split() if token.startswith("<") and token.endswith(">"))


def _durations(table: pd.DataFrame) -> np.ndarray:
    seconds = (table["end"].to_numpy(float) - table["start"].to_numpy(float)).clip(min=1e-3)
    return np.stack([seconds, np.log(seconds)], axis=1)


def frame_levels(wave: np.ndarray, rate: int) -> np.ndarray:
    """RMS level (dB) of each FRAME_S frame of a mono waveform."""
    n = int(FRAME_S * rate)
    frames = wave[: len(wave) // n * n].astype(np.float64).reshape(-1, n)
    return 10 * np.log10(np.mean(frames ** 2, axis=1) + 1e-12)


def speech_threshold(levels: list[np.ndarray]) -> float:
    """A level between the quiet and the loud frames (`frame_levels` of many utterances): midway between their
    10th and 90th percentiles in dB, one threshold for a corpus whose recordings share a noise floor."""
    low, high = np.percentile(np.concatenate(levels), [10, 90])
    return float((low + high) / 2)


def rendering_features(levels: list[np.ndarray], texts, threshold: float) -> pd.DataFrame:
    """RENDERING_COLUMNS of each utterance from its frame levels (`frame_levels`) and its text (words counted)."""
    rows = []
    for frame_db, text in zip(levels, texts, strict=True):
        words = len(text.split()) if isinstance(text, str) else 0  # an empty cell reads back as NaN
        speech = np.flatnonzero(frame_db > threshold)
        seconds, speech_s = len(frame_db) * FRAME_S, len(speech) * FRAME_S
        lead = speech[0] * FRAME_S if len(speech) else seconds
        tail = (len(frame_db) - 1 - speech[-1]) * FRAME_S if len(speech) else seconds
        rows.append([seconds, speech_s, speech_s / max(seconds, FRAME_S), lead, tail, words / max(speech_s, FRAME_S)])
    return pd.DataFrame(rows, columns=RENDERING_COLUMNS)


def floor_classifier(name: str, seed: int = 0):
    """The classifier of one floor, taking a table (columns context, start, end) as its input."""
    regression = LogisticRegression(max_iter=2000, class_weight="balanced", random_state=seed)
    if name == "skeleton_only":
        return make_pipeline(FunctionTransformer(lambda t: t["context"].map(skeleton)),
                             CountVectorizer(token_pattern=r"\S+", ngram_range=(1, 3), lowercase=False), regression)
    if name == "duration_only":
        return make_pipeline(FunctionTransformer(_durations), StandardScaler(), regression)
    if name == "rendering_only":
        return make_pipeline(FunctionTransformer(lambda t: np.log1p(t[RENDERING_COLUMNS].to_numpy(float))),
                             StandardScaler(), regression)
    raise ValueError(f"unknown floor {name!r}; one of {FLOORS}")


def floor_probabilities(train: pd.DataFrame, test: pd.DataFrame, n_classes: int, seed: int = 0) -> dict:
    """{floor: test class probabilities (n, n_classes)} of each floor whose inputs (`FLOOR_INPUTS`) the tables
    have, fitted on `train` (with `label`). A class absent from train gets probability 0."""
    result = {}
    for name in (f for f in FLOORS if set(FLOOR_INPUTS[f]) <= set(train.columns) & set(test.columns)):
        fitted = floor_classifier(name, seed).fit(train, train["label"])
        probs = np.zeros((len(test), n_classes))
        probs[:, fitted.classes_] = fitted.predict_proba(test)
        result[name] = probs
    return result


def cross_validated_macro_f1(classifier, table: pd.DataFrame, folds: int = 5) -> float:
    """Macro F1 of `classifier` (fitted on `table`-like input) over `folds` folds grouped by video."""
    predicted = cross_val_predict(classifier, table, table["label"], groups=table["video_id"], cv=GroupKFold(folds))
    return float(f1_score(table["label"], predicted, average="macro"))

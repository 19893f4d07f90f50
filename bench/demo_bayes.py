"""Bayes-optimal macro F1 of the demo corpus, with and without context (docs/demo_corpus.md).

Simulates the turn-taking process (`turnfusion.sources.demo_turns`, no audio) and scores an observer who
perceives the cue categories perfectly: the current utterance's text cue and/or final prosody, and with
context the same for the two previous utterances (text: their cues and who spoke, as the text context's
speaker and turn-shift tokens show it; prosody: their final prosody, as an audio model with three segments
hears it). The observer predicts argmax of posterior x class weight; posteriors and weights (tuned for
macro F1) come from one half of the draws and are scored on the other.

Perfect perception of the prosody is more than eSpeak's speech allows. With `--perception-from data/segments`
(a demo corpus's segment store, after `dvc repro`) the observer also hears the prosody categories as the
prosody probe does: the four final pitch/energy features of `turnfusion.prosody`, a logistic regression fitted
on the train split, its confusion P(perceived | true category) measured on the val split. Then each simulated
utterance's prosody (and its predecessors') is drawn through that confusion, and the observer knows it.

    python bench/demo_bayes.py [--conversations 20000] [--seed 0] [--perception-from data/segments]
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np
from sklearn.metrics import f1_score

from turnfusion.schema import BACKCHANNEL, KEEP, SHIFT
from turnfusion.sources.demo_turns import PROSODY_PROBS, TEXT_CUE_PROBS, plan_conversation

CUES = {"incomplete": 0, "statement": 1, "question": 2, "narrative": 3}
PROSODIES = {"level": 0, "fall": 1, "rise": 2}


def simulate(n_conversations: int, n_utterances: int, seed: int) -> dict[str, np.ndarray]:
    """Per utterance: label, cue, prosody and, for the two previous ones (-1: none), cue, prosody, same speaker."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n_conversations):
        plan = plan_conversation(n_utterances, rng)
        for i, u in enumerate(plan):
            previous = [plan[i - j] if i - j >= 0 else None for j in (1, 2)]
            rows.append([u.label, CUES[u.cue], PROSODIES[u.prosody],
                         *[CUES[p.cue] if p else -1 for p in previous],
                         *[PROSODIES[p.prosody] if p else -1 for p in previous],
                         *[int(p.speaker == u.speaker) if p else -1 for p in previous]])
    data = np.array(rows)
    names = ["label", "cue", "prosody", "cue1", "cue2", "prosody1", "prosody2", "same1", "same2"]
    return {name: data[:, k] for k, name in enumerate(names)}


MODALITIES = {"text": ["cue"], "prosody": ["prosody"], "both": ["cue", "prosody"]}
CONTEXT = {"text": ["cue1", "cue2", "same1", "same2"], "prosody": ["prosody1", "prosody2"],
           "both": ["cue1", "cue2", "prosody1", "prosody2", "same1", "same2"]}
LIKELIHOODS = {"cue": (TEXT_CUE_PROBS, CUES), "prosody": (PROSODY_PROBS, PROSODIES)}


def likelihood(name: str, confusion: np.ndarray | None = None) -> np.ndarray:
    """P(perceived category | label), (labels, categories): the spec's table, through `confusion` (P(perceived |
    true category)) when given."""
    table, codes = LIKELIHOODS[name]
    matrix = np.array([[table[label][category] for category in codes] for label in (KEEP, SHIFT, BACKCHANNEL)])
    return matrix if confusion is None else matrix @ confusion


def perceive(data: dict[str, np.ndarray], confusion: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """`data` with every prosody category (current and previous) replaced by one drawn from its confusion row."""
    rng = np.random.default_rng(seed)
    cumulative = confusion.cumsum(1)
    out = dict(data)
    for name in ("prosody", "prosody1", "prosody2"):
        true = data[name]
        drawn = (rng.random(len(true))[:, None] > cumulative[np.maximum(true, 0)]).sum(1)
        out[name] = np.where(true >= 0, np.minimum(drawn, len(confusion) - 1), true)
    return out


def measured_confusion(segments_dir: str, seed: int = 0) -> np.ndarray:
    """P(perceived | true prosody category) of the prosody probe on a demo corpus's val split (rows: true)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import confusion_matrix
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from turnfusion.prosody import prosody_features
    from turnfusion.segment import SegmentStore

    store = SegmentStore.open(segments_dir)
    index = store.index
    if "prosody" not in index:
        raise SystemExit(f"{segments_dir}: no prosody column: not a demo corpus")
    rows = {split: np.flatnonzero((index.split == split).to_numpy()) for split in ("train", "val")}
    features = {split: np.stack([prosody_features(store.waveform(i), store.sample_rate) for i in r])
                for split, r in rows.items()}
    codes = {split: index.prosody.to_numpy()[r] for split, r in rows.items()}
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
    probe.fit(features["train"], codes["train"])
    counts = confusion_matrix(codes["val"], probe.predict(features["val"]), labels=list(PROSODIES))
    return counts / counts.sum(1, keepdims=True)


def bayes_macro_f1(data: dict[str, np.ndarray], current: list[str], context: list[str],
                   confusion: np.ndarray | None = None) -> float:
    """Macro F1 on the second half of the draws of the posterior-argmax observer fitted on the first half.

    Given the label, the current utterance's cues are drawn independently of everything before it, so the
    posterior is P(label | context) x P(cues | label): the prior is counted per context cell on the first
    half, the likelihoods are the spec's tables (the prosody's through `confusion` when the observer hears it so)."""
    labels = data["label"]
    key = np.zeros(len(labels), dtype=np.int64)
    for name in context:
        key = key * 8 + data[name] + 1
    half = len(key) // 2
    cells, inverse = np.unique(key, return_inverse=True)
    counts = np.zeros((len(cells), 3))
    np.add.at(counts, (inverse[:half], labels[:half]), 1)
    posterior = ((counts + 1) / (counts + 1).sum(1, keepdims=True))[inverse]
    for name in current:
        posterior = posterior * likelihood(name, confusion if name == "prosody" else None)[:, data[name]].T
    best, best_weights = -1.0, (1.0, 1.0, 1.0)
    grid = np.arange(0.5, 2.51, 0.1)
    for w1, w2 in itertools.product(grid, grid):  # weights relative to keep
        weights = np.array([1.0, w1, w2])
        score = f1_score(labels[:half], (posterior[:half] * weights).argmax(1), average="macro")
        if score > best:
            best, best_weights = score, weights
    return float(f1_score(labels[half:], (posterior[half:] * best_weights).argmax(1), average="macro"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conversations", type=int, default=20000)
    parser.add_argument("--utterances", type=int, default=36)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--perception-from", metavar="SEGMENTS_DIR",
                        help="also score an observer who hears the prosody as the prosody probe does on this corpus")
    args = parser.parse_args()
    data = simulate(args.conversations, args.utterances, args.seed)
    table(data)
    if args.perception_from:
        confusion = measured_confusion(args.perception_from, args.seed)
        print(f"\nThe prosody as the probe hears it (rows: true {', '.join(PROSODIES)}; val split of "
              f"{args.perception_from}):\n{np.array2string(confusion, precision=3)}; "
              f"accuracy per category {np.diag(confusion).round(3).tolist()}\n")
        table(perceive(data, confusion, args.seed + 1), confusion)


def table(data: dict[str, np.ndarray], confusion: np.ndarray | None = None) -> None:
    shares = np.bincount(data["label"], minlength=3) / len(data["label"])
    print(f"{len(data['label'])} utterances; label shares keep / shift / backchannel: "
          + " / ".join(f"{s:.3f}" for s in shares))
    print("| observer | no context | two previous utterances | gain |\n|---|---|---|---|")
    alone = {}
    for modality in ("text", "prosody", "both"):
        alone[modality], context = (bayes_macro_f1(data, MODALITIES[modality], context, confusion)
                                    for context in ([], CONTEXT[modality]))
        print(f"| {modality} | {alone[modality]:.3f} | {context:.3f} | {context - alone[modality]:+.3f} |")
    # what a fusion model with one audio segment gets: the previous utterances through the text only
    text_context = bayes_macro_f1(data, MODALITIES["both"], CONTEXT["text"], confusion)
    print(f"| both, context from the text only | {alone['both']:.3f} | {text_context:.3f} | "
          f"{text_context - alone['both']:+.3f} |")


if __name__ == "__main__":
    main()

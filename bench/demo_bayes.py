"""Bayes-optimal macro F1 of the demo corpus, with and without context (docs/demo_corpus.md).

Simulates the turn-taking process (`turnfusion.data.sources.demo_turns`, no audio) and scores an observer who
perceives the cue categories perfectly: the current utterance's text cue and/or final prosody, and with
context the same for the two previous utterances (text: their cues and who spoke, as the text context's
speaker and turn-shift tokens show it; prosody: their final prosody, as an audio model with three segments
hears it). The observer predicts argmax of posterior x class weight; posteriors and weights (tuned for
macro F1) come from one half of the draws and are scored on the other.

Perfect perception of the prosody is more than eSpeak's speech allows. With `--corpus data/segments` (a demo
corpus's segment store, after `dvc repro`) the observer also hears the prosody categories as the prosody probe
does: the four final pitch/energy features of `turnfusion.training.prosody`, a logistic regression fitted on the train
split, its confusion P(perceived | true category) measured on the val split. Then each simulated utterance's
prosody (and its predecessors') is drawn through that confusion, and the observer knows it.

The same option scores every observer on the corpus's own val and test utterances, whose cue categories the
segment store keeps: with perfect perception, and with the prosody of each utterance as the probe heard it.
That is the optimum on the very utterances a model is scored on, so a model's gap to it does not carry the
sampling noise of a split of a few hundred utterances.

    python bench/demo_bayes.py [--conversations 20000] [--seed 0] [--corpus data/segments]
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score

from turnfusion.data.sources.demo import PROSODY_SHAPES
from turnfusion.data.sources.demo_turns import PROSODY_PROBS, TEXT_CUE_PROBS, plan_conversation
from turnfusion.data.stores import SegmentStore
from turnfusion.schema import BACKCHANNEL, KEEP, SHIFT
from turnfusion.training.prosody import prosody_features

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


def prosody_hearing(index: pd.DataFrame, features: np.ndarray, seed: int = 0,
                    classifier=None) -> tuple[np.ndarray, np.ndarray]:
    """How the prosody probe hears a demo corpus's prosody, from its segments' `features`
    (`turnfusion.training.prosody.prosody_features`): (P(perceived | true category) on the val split, rows: true;
    the category it hears in every segment). The probe (`turnfusion.evaluation.probe.feature_probe`, or
    `classifier`) is fitted on the train split's spoken categories."""
    from sklearn.metrics import confusion_matrix

    from turnfusion.evaluation.probe import feature_probe

    codes = index.prosody.map(PROSODIES).to_numpy()
    train, val = (index.split == "train").to_numpy(), (index.split == "val").to_numpy()
    classifier = feature_probe(seed) if classifier is None else classifier
    heard = classifier.fit(features[train], codes[train]).predict(features)
    counts = confusion_matrix(codes[val], heard[val], labels=list(PROSODIES.values()))
    return counts / counts.sum(1, keepdims=True), heard


def rendered_pitch(index: pd.DataFrame, features: np.ndarray) -> str:
    """The final pitch eSpeak NG rendered per spoken category (the probe's first feature: median F0 of the last
    0.35 s in semitones re. the utterance's median; quartiles) against the spec's nominal SSML change."""
    lines = ["| spoken | nominal SSML pitch of the last two words | rendered final pitch: median [quartiles] |",
             "|---|---|---|"]
    for name, shape in PROSODY_SHAPES.items():
        q1, median, q3 = np.percentile(features[(index.prosody == name).to_numpy(), 0], [25, 50, 75])
        nominal = shape["pitch"][0]
        lines.append(f"| {name} | {nominal:+.0f} % ({12 * np.log2(1 + nominal / 100):+.1f} st) | "
                     f"{median:+.1f} st [{q1:+.1f}, {q3:+.1f}] |")
    return "\n".join(lines)


def corpus_rows(index, prosody: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    """A segment store's utterances as the observer sees them, per split: label, text cue, `prosody` (a code per
    index row: the spoken or the heard category) and the two previous utterances' in the recording, as the
    models see them (rows the segment stage skipped are not there for them either)."""
    order = index.sort_values(["video_id", "position"], kind="stable").index.to_numpy()
    video, speaker = index.video_id.to_numpy()[order], index.speaker.to_numpy()[order]
    columns = {"label": index.label.to_numpy()[order], "cue": index.text_cue.map(CUES).to_numpy()[order],
               "prosody": np.asarray(prosody)[order]}
    for j in (1, 2):
        previous = np.maximum(np.arange(len(order)) - j, 0)
        there = (np.arange(len(order)) >= j) & (video[previous] == video)
        columns[f"cue{j}"] = np.where(there, columns["cue"][previous], -1)
        columns[f"prosody{j}"] = np.where(there, columns["prosody"][previous], -1)
        columns[f"same{j}"] = np.where(there, (speaker[previous] == speaker).astype(int), -1)
    split = index.split.to_numpy()[order]
    return {name: {k: v[split == name] for k, v in columns.items()} for name in ("val", "test")}


def context_key(data: dict[str, np.ndarray], context: list[str]) -> np.ndarray:
    key = np.zeros(len(data["label"]), dtype=np.int64)
    for name in context:
        key = key * 8 + data[name] + 1
    return key


@dataclasses.dataclass
class Observer:
    """The posterior-argmax observer. Given the label, the current utterance's cues are drawn independently of
    everything before it, so the posterior is P(label | context cell) x P(cues | label): the prior is counted per
    context cell on simulated draws, the likelihoods are the spec's tables (the prosody's through `confusion`
    when the observer hears it so). It predicts argmax of posterior x class weights tuned for macro F1."""

    current: list[str]
    context: list[str]
    confusion: np.ndarray | None
    cells: np.ndarray
    prior: np.ndarray
    weights: np.ndarray

    def posterior(self, data: dict[str, np.ndarray]) -> np.ndarray:
        key = context_key(data, self.context)
        at = np.minimum(np.searchsorted(self.cells, key), len(self.cells) - 1)
        posterior = np.where((self.cells[at] == key)[:, None], self.prior[at], 1 / 3)  # unseen cell: uniform
        for name in self.current:
            posterior = posterior * likelihood(name, self.confusion if name == "prosody" else None)[:, data[name]].T
        return posterior

    def predict(self, data: dict[str, np.ndarray]) -> np.ndarray:
        return (self.posterior(data) * self.weights).argmax(1)

    def macro_f1(self, data: dict[str, np.ndarray]) -> float:
        return float(f1_score(data["label"], self.predict(data), average="macro"))


def fit_observer(data: dict[str, np.ndarray], current: list[str], context: list[str],
                 confusion: np.ndarray | None = None) -> Observer:
    """The observer whose context prior is counted and class weights tuned on `data`."""
    cells, inverse = np.unique(context_key(data, context), return_inverse=True)
    counts = np.zeros((len(cells), 3))
    np.add.at(counts, (inverse, data["label"]), 1)
    observer = Observer(current, context, confusion, cells, (counts + 1) / (counts + 1).sum(1, keepdims=True),
                        np.ones(3))
    posterior, best = observer.posterior(data), -1.0
    grid = np.arange(0.5, 2.51, 0.1)
    for w1, w2 in itertools.product(grid, grid):  # weights relative to keep
        weights = np.array([1.0, w1, w2])
        score = f1_score(data["label"], (posterior * weights).argmax(1), average="macro")
        if score > best:
            best, observer.weights = score, weights
    return observer


def halves(data: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    half = len(data["label"]) // 2
    return {k: v[:half] for k, v in data.items()}, {k: v[half:] for k, v in data.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conversations", type=int, default=20000)
    parser.add_argument("--utterances", type=int, default=36)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--corpus", metavar="SEGMENTS_DIR",
                        help="a demo corpus's segment store (data/segments after dvc repro): also score an observer "
                             "who hears the prosody as the prosody probe does on it, and every observer on the "
                             "corpus's own val and test utterances")
    args = parser.parse_args()
    data = simulate(args.conversations, args.utterances, args.seed)
    if not args.corpus:
        table(data)
        return
    store = SegmentStore.open(args.corpus)
    if "prosody" not in store.index:
        raise SystemExit(f"{args.corpus}: no prosody column in its index: not a demo corpus")
    features = np.stack([prosody_features(store.waveform(i), store.sample_rate) for i in range(len(store.index))])
    confusion, heard = prosody_hearing(store.index, features, args.seed)
    table(data, corpus=corpus_rows(store.index, store.index.prosody.map(PROSODIES).to_numpy()))
    print(f"\nThe final pitch as eSpeak NG rendered it ({args.corpus}, all splits):\n"
          f"{rendered_pitch(store.index, features)}")
    print(f"\nThe prosody as the probe hears it (rows: true {', '.join(PROSODIES)}; val split of "
          f"{args.corpus}):\n{np.array2string(confusion, precision=3)}; "
          f"accuracy per category {np.diag(confusion).round(3).tolist()}\n")
    table(perceive(data, confusion, args.seed + 1), confusion, corpus_rows(store.index, heard))


# (row, current utterance's cues, context): a fusion model with one audio segment hears the previous utterances
# through the text only, hence the last row
ROWS = [("text", "text", "text"), ("prosody", "prosody", "prosody"), ("both", "both", "both"),
        ("both, context from the text only", "both", "text")]


def table(data: dict[str, np.ndarray], confusion: np.ndarray | None = None,
          corpus: dict[str, dict[str, np.ndarray]] | None = None) -> None:
    """Macro F1 of each observer (fitted on the first half of the simulated draws) on the second half and, with
    `corpus` (`corpus_rows`), on a corpus's own val and test utterances."""
    fitting, scoring = halves(data)
    shares = np.bincount(data["label"], minlength=3) / len(data["label"])
    print(f"{len(data['label'])} utterances; label shares keep / shift / backchannel: "
          + " / ".join(f"{s:.3f}" for s in shares))
    print("| observer | no context | two previous utterances | gain |\n|---|---|---|---|")
    observers = {}
    for row, current, context in ROWS:
        observers[row] = [fit_observer(fitting, MODALITIES[current], names, confusion)
                          for names in ([], CONTEXT[context])]
        alone, with_context = (observer.macro_f1(scoring) for observer in observers[row])
        print(f"| {row} | {alone:.3f} | {with_context:.3f} | {with_context - alone:+.3f} |")
    if corpus:
        print("\nThe same observers on the corpus's own utterances (what the models are scored on):\n"
              + "| observer | " + " | ".join(f"{split} ({len(rows['label'])}): no context / context"
                                           for split, rows in corpus.items()) + " |\n|---|---|---|")
        for row, pair in observers.items():
            print(f"| {row} | " + " | ".join(" / ".join(f"{observer.macro_f1(rows):.3f}" for observer in pair)
                                             for rows in corpus.values()) + " |")


if __name__ == "__main__":
    main()

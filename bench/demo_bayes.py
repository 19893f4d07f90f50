"""Bayes-optimal macro F1 of the demo corpus, with and without context (docs/demo_corpus.md).

Simulates the turn-taking process (`turnfusion.sources.demo_turns`, no audio) and scores an observer who
perceives the cue categories perfectly: the current utterance's text cue and/or final prosody, and with
context the same for the two previous utterances (text: their cues and who spoke, as the text context's
speaker and turn-shift tokens show it; prosody: their final prosody, as an audio model with three segments
hears it). The observer predicts argmax of posterior x class weight; posteriors and weights (tuned for
macro F1) come from one half of the draws and are scored on the other.

    python bench/demo_bayes.py [--conversations 20000] [--seed 0]
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


def bayes_macro_f1(data: dict[str, np.ndarray], current: list[str], context: list[str]) -> float:
    """Macro F1 on the second half of the draws of the posterior-argmax observer fitted on the first half.

    Given the label, the current utterance's cues are drawn independently of everything before it, so the
    posterior is P(label | context) x P(cues | label): the prior is counted per context cell on the first
    half, the likelihoods are the spec's tables."""
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
        table, codes = LIKELIHOODS[name]
        matrix = np.array([[table[label][category] for category in codes] for label in (KEEP, SHIFT, BACKCHANNEL)])
        posterior = posterior * matrix[:, data[name]].T
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
    args = parser.parse_args()
    data = simulate(args.conversations, args.utterances, args.seed)
    shares = np.bincount(data["label"], minlength=3) / len(data["label"])
    print(f"{len(data['label'])} utterances; label shares keep / shift / backchannel: "
          + " / ".join(f"{s:.3f}" for s in shares))
    print("| observer | no context | two previous utterances | gain |\n|---|---|---|---|")
    alone = {}
    for modality in ("text", "prosody", "both"):
        alone[modality], context = (bayes_macro_f1(data, MODALITIES[modality], context)
                                    for context in ([], CONTEXT[modality]))
        print(f"| {modality} | {alone[modality]:.3f} | {context:.3f} | {context - alone[modality]:+.3f} |")
    # what a fusion model with one audio segment gets: the previous utterances through the text only
    text_context = bayes_macro_f1(data, MODALITIES["both"], CONTEXT["text"])
    print(f"| both, context from the text only | {alone['both']:.3f} | {text_context:.3f} | "
          f"{text_context - alone['both']:+.3f} |")


if __name__ == "__main__":
    main()

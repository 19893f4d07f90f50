"""The turn-taking process of the demo corpus: who speaks, each utterance's label and its cue categories.

No words and no audio here (`demo.py` realises them), so the process can be simulated fast, for the Bayes
figures in docs/demo_corpus.md (`bench/demo_bayes.py`) and for tests.

A conversation is a sequence of turns. Each turn plans its length in utterances when it starts: an *answer*
turn (the other speaker's turn ended with a question) is short, an *open* turn holds for several utterances.
Every utterance before the planned end is a keep or, more often the longer the speaker has held, a
backchannel (the listener says "mm-hm" and the speaker goes on); the last one is a shift. Then, independently
given the label, as in the single-utterance design, a text cue and a final prosody. So the two previous
utterances carry information the current one does not: whether the current speaker has just taken the turn,
after a question or not, and how long they have held it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from turnfusion.schema import BACKCHANNEL, KEEP, SHIFT

# --- every number below is documented in docs/demo_corpus.md ---------------------------------------
TURN_LENGTH = {  # P(planned length of a turn in utterances | turn kind)
    "answer": {1: 0.85, 2: 0.15},
    "open": {3: 0.40, 4: 0.35, 5: 0.25},
}
BACKCHANNEL_BY_HOLD = (0.02, 0.40, 0.65)  # P(backchannel | not the turn's last) at turn position 1, 2, 3+
TEXT_CUE_PROBS = {  # P(text cue category | label)
    KEEP: {"incomplete": 0.85, "statement": 0.09, "narrative": 0.03, "question": 0.03},
    SHIFT: {"question": 0.52, "statement": 0.38, "incomplete": 0.06, "narrative": 0.04},
    BACKCHANNEL: {"narrative": 0.52, "statement": 0.38, "incomplete": 0.06, "question": 0.04},
}
PROSODY_PROBS = {  # P(final prosody | label)
    KEEP: {"level": 0.70, "rise": 0.15, "fall": 0.15},
    SHIFT: {"fall": 0.90, "level": 0.05, "rise": 0.05},
    BACKCHANNEL: {"rise": 0.90, "level": 0.05, "fall": 0.05},
}
NEW_TOPIC = 0.4  # P(an open turn starts a new topic); an answer stays on the question's topic
N_TOPICS = 12  # demo.OBJECTS


@dataclass(frozen=True)
class Planned:
    """One utterance of the process: what the words and the audio are then made to say."""

    speaker: int
    label: int
    cue: str  # incomplete, statement, question, narrative
    prosody: str  # level, fall, rise
    turn_kind: str  # answer or open
    turn_position: int  # 1 for the first utterance of a turn
    topic: int  # index of the turn's topic (an object the statements talk about)


def pick(rng: np.random.Generator, probs: dict):
    keys = list(probs)
    return keys[rng.choice(len(keys), p=np.array([probs[k] for k in keys]))]


def turn_labels(length: int, rng: np.random.Generator) -> list[int]:
    """Labels of a turn planned to last `length` utterances: keeps and backchannels, then the shift."""
    labels = []
    for position in range(1, length):
        p_backchannel = BACKCHANNEL_BY_HOLD[min(position, len(BACKCHANNEL_BY_HOLD)) - 1]
        labels.append(BACKCHANNEL if rng.random() < p_backchannel else KEEP)
    return labels + [SHIFT]


def plan_conversation(n_utterances: int, rng: np.random.Generator) -> list[Planned]:
    """The first `n_utterances` utterances of a conversation (its last turn may be cut short)."""
    plan: list[Planned] = []
    speaker, kind, topic = int(rng.integers(2)), "open", int(rng.integers(N_TOPICS))
    while len(plan) < n_utterances:
        for position, label in enumerate(turn_labels(pick(rng, TURN_LENGTH[kind]), rng), start=1):
            plan.append(Planned(speaker, label, pick(rng, TEXT_CUE_PROBS[label]), pick(rng, PROSODY_PROBS[label]),
                                kind, position, topic))
        kind = "answer" if plan[-1].cue == "question" else "open"
        if kind == "open" and rng.random() < NEW_TOPIC:
            topic = int(rng.integers(N_TOPICS))
        speaker = 1 - speaker
    return plan[:n_utterances]

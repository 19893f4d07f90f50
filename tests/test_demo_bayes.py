"""bench/demo_bayes.py: the observer scored on a corpus's own utterances sees them as the simulation codes them."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from turnfusion.data.sources.demo_turns import plan_conversation

spec = importlib.util.spec_from_file_location("demo_bayes", Path(__file__).parents[1] / "bench" / "demo_bayes.py")
demo_bayes = sys.modules["demo_bayes"] = importlib.util.module_from_spec(spec)  # dataclasses look it up
spec.loader.exec_module(demo_bayes)


def corpus_index(n_conversations: int, seed: int) -> pd.DataFrame:
    """A segment store's index as the demo corpus writes it (rows shuffled: order must come from `position`)."""
    rng = np.random.default_rng(seed)
    rows = [{"video_id": f"demo{c:03d}", "position": k, "label": u.label, "text_cue": u.cue, "prosody": u.prosody,
             "speaker": u.speaker, "split": "val" if c % 2 else "test"}
            for c in range(n_conversations) for k, u in enumerate(plan_conversation(36, rng))]
    return pd.DataFrame(rows).sample(frac=1.0, random_state=0).reset_index(drop=True)


def test_corpus_rows_take_the_previous_utterances_of_the_same_recording_in_order():
    index = corpus_index(4, seed=1)
    rows = demo_bayes.corpus_rows(index, index.prosody.map(demo_bayes.PROSODIES).to_numpy())
    ordered = index.sort_values(["video_id", "position"])
    test = ordered[ordered.split == "test"].reset_index(drop=True)
    assert list(rows["test"]["label"]) == list(test.label)
    for i, row in test.iterrows():
        for j in (1, 2):
            previous = test.iloc[i - j] if i >= j and test.video_id[i - j] == row.video_id else None
            assert rows["test"][f"cue{j}"][i] == (demo_bayes.CUES[previous.text_cue] if previous is not None else -1)
            assert rows["test"][f"prosody{j}"][i] == (
                demo_bayes.PROSODIES[previous.prosody] if previous is not None else -1)
            assert rows["test"][f"same{j}"][i] == (int(previous.speaker == row.speaker) if previous is not None else -1)


def test_an_observer_fitted_on_the_simulation_scores_a_corpus_of_the_same_process_as_the_simulation_does():
    simulated = demo_bayes.simulate(3000, 36, seed=0)
    fitting, scoring = demo_bayes.halves(simulated)
    observer = demo_bayes.fit_observer(fitting, ["cue", "prosody"], demo_bayes.CONTEXT["both"])
    index = corpus_index(200, seed=5)
    corpus = demo_bayes.corpus_rows(index, index.prosody.map(demo_bayes.PROSODIES).to_numpy())
    on_corpus = np.mean([observer.macro_f1(rows) for rows in corpus.values()])
    assert on_corpus == pytest.approx(observer.macro_f1(scoring), abs=0.02)
    # the context is what lifts it: without it the same corpus scores clearly lower
    alone = demo_bayes.fit_observer(fitting, ["cue", "prosody"], [])
    assert np.mean([alone.macro_f1(rows) for rows in corpus.values()]) < on_corpus - 0.02


def test_an_unseen_context_cell_falls_back_to_a_uniform_prior():
    simulated = demo_bayes.simulate(50, 36, seed=0)
    observer = demo_bayes.fit_observer(simulated, ["cue"], ["cue1"])
    unseen = {name: values[:1].copy() for name, values in simulated.items()}
    unseen["cue1"][:] = 6  # no such cue code: a cell the simulation never had
    expected = demo_bayes.likelihood("cue")[:, unseen["cue"]].T / 3
    assert observer.posterior(unseen) == pytest.approx(expected)

"""bench/end_of_turn.py: eot-bench's spans and policy metrics on a conversation whose answers are known."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import utterance_table

spec = importlib.util.spec_from_file_location("end_of_turn", Path(__file__).parents[1] / "bench" / "end_of_turn.py")
end_of_turn = sys.modules["end_of_turn"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(end_of_turn)

TALK = utterance_table([
    ("v", "a", "so we went", 0, 0.0, 1.0, 0),  # keep: a 0.5 s pause, then the same speaker
    ("v", "b", "to the market", 1, 1.5, 2.5, 0),  # shift: an end of turn
    ("v", "c", "nice", 0, 2.7, 3.0, 1),  # keep: a 0.1 s pause, too short to count
    ("v", "d", "and then", 2, 3.1, 4.0, 1),  # backchannel: the speaker goes on after 1.5 s
    ("v", "e", "we left", 1, 5.5, 6.0, 1),  # shift
])


def test_spans_are_ends_of_turn_after_a_shift_and_pauses_until_the_speakers_next_words():
    spans = end_of_turn.spans(TALK).set_index("sentence_id")
    assert spans.kind.to_dict() == {"a": "hold", "b": "eot", "d": "hold", "e": "eot"}
    assert spans.pause["a"] == pytest.approx(0.5) and spans.pause["d"] == pytest.approx(1.5)


def test_a_detector_that_knows_the_answer_waits_only_the_score_point_and_cuts_nothing_off():
    spans = end_of_turn.spans(TALK)
    kind, pause = spans.kind.to_numpy(), spans.pause.to_numpy()
    perfect = end_of_turn.summary(end_of_turn.policy_grid((kind == "eot").astype(float), kind, pause))
    assert perfect == {"cutoff@300ms": 0.0, "cutoff@600ms": 0.0, "latency@5%": pytest.approx(0.2),
                       "latency@10%": pytest.approx(0.2)}
    always = end_of_turn.summary(end_of_turn.policy_grid(np.ones(len(kind)), kind, pause))
    assert always["cutoff@300ms"] == 1.0  # acting at 0.2 s cuts off both pauses
    # no cut-off at all: only a policy that never acts on the model and times out after the 1.5 s pause
    assert always["latency@5%"] == pytest.approx(1.5)
    timeout = end_of_turn.summary(end_of_turn.silence_timeout(pause[kind == "hold"]))
    assert timeout["latency@5%"] == pytest.approx(1.5) and timeout["cutoff@600ms"] == 0.5

import numpy as np
import pytest

from turnfusion.data.sources.demo_turns import BACKCHANNEL_BY_HOLD, TURN_LENGTH, plan_conversation, turn_labels
from turnfusion.schema import BACKCHANNEL, KEEP, SHIFT


def turns(plan):
    """The plan cut into turns: lists of consecutive utterances of one speaker."""
    out = []
    for u in plan:
        if not out or u.turn_position == 1:
            out.append([])
        out[-1].append(u)
    return out


@pytest.fixture(scope="module")
def plans():
    rng = np.random.default_rng(0)
    return [plan_conversation(36, rng) for _ in range(400)]


def test_each_turn_is_one_speaker_holding_then_one_shift(plans):
    for plan in plans:
        conversation = turns(plan)
        for turn, following in zip(conversation, conversation[1:], strict=False):
            assert len({u.speaker for u in turn}) == 1
            assert [u.turn_position for u in turn] == list(range(1, len(turn) + 1))
            assert all(u.label != SHIFT for u in turn[:-1])
            assert turn[-1].label == SHIFT  # complete turns (the last one may be cut by the conversation end)
            assert following[0].speaker != turn[0].speaker


def test_turn_lengths_follow_their_kind(plans):
    complete = [t for plan in plans for t in turns(plan)[:-1]]
    lengths = {kind: np.array([len(t) for t in complete if t[0].turn_kind == kind]) for kind in TURN_LENGTH}
    for kind, probs in TURN_LENGTH.items():
        assert set(lengths[kind]) <= set(probs)
        assert lengths[kind].mean() == pytest.approx(sum(k * p for k, p in probs.items()), abs=0.1)
    assert lengths["open"].min() >= 3 > lengths["answer"].max()  # a speaker holds; an answer is short


def test_a_question_is_answered_by_the_other_speaker_on_its_topic(plans):
    n_answers = 0
    for plan in plans:
        conversation = turns(plan)
        for turn, following in zip(conversation, conversation[1:], strict=False):
            asked = turn[-1].cue == "question"
            assert (following[0].turn_kind == "answer") == asked
            if asked:
                n_answers += 1
                assert following[0].topic == turn[-1].topic
    assert n_answers > 1000


def test_backchannels_grow_more_likely_the_longer_the_speaker_holds(plans):
    held = [u for plan in plans for u in plan if u.label != SHIFT]
    by_position = {k: np.mean([u.label == BACKCHANNEL for u in held if min(u.turn_position, 3) == k])
                   for k in (1, 2, 3)}
    # not the turn's last utterance, so P(backchannel | position) is the spec's value
    for k, p in by_position.items():
        assert p == pytest.approx(BACKCHANNEL_BY_HOLD[k - 1], abs=0.03)
    assert by_position[1] < by_position[2] < by_position[3]


def test_turn_labels_end_with_the_one_shift():
    rng = np.random.default_rng(1)
    for length in (1, 2, 5):
        labels = turn_labels(length, rng)
        assert len(labels) == length and labels[-1] == SHIFT and set(labels[:-1]) <= {KEEP, BACKCHANNEL}


def test_the_previous_utterances_carry_information_about_the_label(plans):
    """What context is for: the first utterance after a question is mostly a shift, the first of an open turn
    almost never (the single-utterance design had the same label shares everywhere)."""
    after_question = [u.label == SHIFT for plan in plans for u in plan if u.turn_position == 1 and
                      u.turn_kind == "answer"]
    opening = [u.label == SHIFT for plan in plans for u in plan if u.turn_position == 1 and u.turn_kind == "open"]
    assert np.mean(after_question) > 0.8 and np.mean(opening) == 0

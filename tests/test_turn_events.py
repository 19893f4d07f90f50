import dataclasses

import pytest
import yaml
from conftest import REPO

from turnfusion.choices import BACKCHANNEL, KEEP, SHIFT
from turnfusion.config import LabelConfig, from_params
from turnfusion.data.turn_events import Unit, label_events, merge_units
from turnfusion.text.backchannels import BACKCHANNELS_EN, backchannel_units

A, B = 0, 1
WORDS = backchannel_units(BACKCHANNELS_EN)


def shipped(**changes) -> LabelConfig:
    cfg = from_params(LabelConfig, yaml.safe_load((REPO / "params.yaml").read_text()))
    return dataclasses.replace(cfg, **changes)


def call(backchannel=(3.1, 3.5, "mm-hmm")) -> list[Unit]:
    """A call with each event once: U1 gets a backchannel, U2 is kept, U3 is a shift, B's U4 is ended by A's barge-in
    (a shift), U5 and U6 are shifts, U7 ends the recording."""
    return [
        Unit(A, 1.0, 3.0, "we went to the market yesterday"),
        Unit(B, *backchannel),
        Unit(A, 4.0, 6.0, "and it was really nice"),
        Unit(A, 6.6, 8.0, "did you go there"),
        Unit(B, 8.4, 11.0, "yes i went there last week"),
        Unit(A, 10.5, 13.0, "oh and what did you buy"),
        Unit(B, 13.5, 15.0, "some bread"),
        Unit(A, 16.0, 17.0, "nice"),
    ]


def labels(events) -> list[tuple[float, int]]:
    return [(u.start, label) for u, label in events.utterances]


def test_each_event_of_a_hand_made_call_is_labelled_exactly():
    events = label_events(call(), 18.0, shipped(), WORDS)
    assert labels(events) == [(1.0, BACKCHANNEL), (4.0, KEEP), (6.6, SHIFT), (8.4, SHIFT), (10.5, SHIFT),
                              (13.5, SHIFT)]
    assert [(u.start, reason) for u, reason in events.skipped] == [(16.0, "end_of_recording")]
    assert [u.text for u in events.backchannels] == ["mm-hmm"]  # a listener's response is no utterance of its own
    assert [(o["start"], o["listener"], o["outcome"]) for o in events.overlaps] == [(3.1, B, "backchannel"),
                                                                                  (10.5, A, "barge_in")]


@pytest.mark.parametrize(("changes", "backchannel", "label"), [
    ({"bc_max_s": 0.5}, (3.1, 3.5, "mm-hmm"), BACKCHANNEL),
    ({"bc_max_s": 0.3}, (3.1, 3.5, "mm-hmm"), SHIFT),  # too long for a backchannel: the listener took the turn
    ({"bc_window_s": 0.6}, (2.5, 2.9, "yeah"), BACKCHANNEL),  # began 0.5 s before the speaker's end
    ({"bc_window_s": 0.4}, (2.5, 2.9, "yeah"), KEEP),  # earlier than the window: not this utterance's response
    ({"bc_post_silence_s": 5.0}, (3.1, 3.5, "mm-hmm"), SHIFT),  # the listener spoke again 4.9 s later: not isolated
    ({}, (3.1, 3.5, "i went there"), SHIFT),  # short, but words that are no backchannel
])
def test_a_threshold_moved_past_the_event_flips_the_label(changes, backchannel, label):
    events = label_events(call(backchannel), 18.0, shipped(**changes), WORDS)
    assert labels(events)[0] == (1.0, label)


def test_without_words_to_check_activity_alone_decides():
    events = label_events(call((3.1, 3.5, "i went there")), 18.0, shipped(), words=None)
    assert labels(events)[0] == (1.0, BACKCHANNEL)


def test_a_long_silence_and_the_recording_end_are_skipped_not_guessed():
    events = label_events(call(), 18.0, shipped(max_gap_s=0.5), WORDS)
    assert (4.0, "no_response") in [(u.start, r) for u, r in events.skipped]  # 0.6 s before anyone spoke
    events = label_events(call(), 40.0, shipped(), WORDS)
    assert (16.0, "no_response") in [(u.start, r) for u, r in events.skipped]  # 23 s of silence, then the end


def test_overlap_where_both_go_on_and_speech_inside_the_other_turn_are_skipped():
    units = [Unit(A, 0.0, 3.0, "so we went"), Unit(B, 2.5, 5.0, "i was there too you know"),
             Unit(A, 4.0, 6.0, "and then we left"), Unit(B, 7.0, 20.0, "a long story"),
             Unit(A, 9.0, 11.0, "really is that so"), Unit(A, 22.0, 23.0, "ok")]
    events = label_events(units, 24.0, shipped(), WORDS)
    skipped = {u.start: r for u, r in events.skipped}
    assert skipped[0.0] == "both_went_on"
    assert skipped[9.0] == "inside_other_turn"
    assert {o["start"]: o["outcome"] for o in events.overlaps}[2.5] == "both_went_on"


def test_too_short_utterances_are_skipped():
    events = label_events(call(), 18.0, shipped(min_utterance_s=1.5), WORDS)
    assert {u.start: r for u, r in events.skipped}[6.6] == "too_short"


def test_pieces_closer_than_the_minimum_pause_make_one_unit():
    pieces = [(1.0, 2.0, "we went"), (2.15, 3.0, "to the market"), (3.5, 4.0, "yes"), (5.0, 5.05, "")]
    assert merge_units(A, pieces, 0.2, min_speech_s=0.1) == [Unit(A, 1.0, 3.0, "we went to the market"),
                                                              Unit(A, 3.5, 4.0, "yes")]
    assert len(merge_units(A, pieces, 0.1, min_speech_s=0.1)) == 3
    assert len(merge_units(A, pieces, 0.1, min_speech_s=0.0)) == 4


def test_speech_that_begins_at_the_same_moment_is_seen_by_both_sides():
    units = [Unit(A, 0.0, 2.0, "so"), Unit(B, 0.0, 5.0, "well i think we should go"), Unit(A, 6.0, 8.0, "fine"),
             Unit(B, 8.5, 10.0, "good"), Unit(A, 12.0, 14.0, "and you"), Unit(B, 14.5, 16.0, "me"),
             Unit(A, 14.5, 16.0, "i")]
    events = label_events(units, 100.0, shipped(), WORDS)
    assert {u.start: r for u, r in events.skipped}[0.0] == "inside_other_turn"  # said while B held the floor
    assert dict(labels(events))[0.0] == SHIFT  # B's turn: A took it over
    assert {u.start: r for u, r in events.skipped}[12.0] == "both_went_on"  # both began again at 14.5


def test_touching_pieces_are_one_unit_even_without_a_minimum_pause():
    assert merge_units(A, [(0.0, 2.0, "we went"), (2.0, 4.0, "there")], 0.0) == [Unit(A, 0.0, 4.0, "we went there")]


def test_an_overlap_shorter_than_the_minimum_is_a_quick_shift_not_a_barge_in():
    barged = label_events(call(), 18.0, shipped(min_overlap_s=0.4), WORDS)  # A began 0.5 s before B's end
    quick = label_events(call(), 18.0, shipped(min_overlap_s=0.6), WORDS)
    assert [o["outcome"] for o in barged.overlaps] == ["backchannel", "barge_in"]
    assert [o["outcome"] for o in quick.overlaps] == ["backchannel"]
    assert labels(barged) == labels(quick)  # a shift either way


@pytest.mark.parametrize(("resumes", "label", "outcome"), [(12.0, SHIFT, "barge_in"), (11.75, "both_went_on",
                                                                                      "both_went_on")])
def test_the_labels_and_the_overlap_table_judge_a_barge_in_by_one_rule_even_at_the_boundaries(resumes, label,
                                                                                              outcome):
    """B cuts into A's utterance by exactly min_overlap_s and A speaks again exactly when B ends (a barge-in), or
    just before (both went on): the utterance's label and the overlap's outcome agree (they had two rules once)."""
    units = [Unit(A, 8.0, 10.0, "so we went to the market and then"), Unit(B, 9.75, 12.0, "wait which market"),
             Unit(A, resumes, 14.0, "the one by the river"), Unit(B, 15.0, 16.0, "oh nice")]
    events = label_events(units, 20.0, shipped(min_overlap_s=0.25), WORDS)
    got = dict(labels(events)) | {u.start: reason for u, reason in events.skipped}
    assert got[8.0] == label
    assert [o["outcome"] for o in events.overlaps if o["start"] == 9.75] == [outcome]

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml
from conftest import REPO
from spoken_call import EXPECTED, RATE, SCRIPT, spoken_call

from turnfusion.choices import KEEP, SHIFT
from turnfusion.config import LabelConfig, from_params
from turnfusion.data.label import (
    agreement,
    backchannel_agreement,
    derive_labels,
    label_source,
    match_utterances,
    pair_times,
)
from turnfusion.errors import DataError


def shipped(**changes) -> LabelConfig:
    return dataclasses.replace(from_params(LabelConfig, yaml.safe_load((REPO / "params.yaml").read_text())), **changes)


@pytest.fixture(scope="module")
def call(tmp_path_factory):
    """A two-channel call spoken by eSpeak NG, its Whisper-style transcript, and the spoken timeline."""
    folder = tmp_path_factory.mktemp("call")
    words, audio = spoken_call(folder)
    return folder, words, audio


def test_a_spoken_call_is_labelled_exactly_from_its_channels_alone(call):
    folder, _, _ = call
    table, overlaps, skipped = derive_labels(["call1"], folder, None, None, shipped(), progress=False)
    assert table.label.tolist() == EXPECTED
    assert table.text.tolist() == [""] * 6  # no transcript: no words
    assert overlaps.outcome.tolist() == ["backchannel", "barge_in"]
    assert skipped.reason.tolist() == ["end_of_recording"]


def test_with_a_transcript_utterances_carry_their_words_and_the_same_labels(call):
    folder, words, _ = call
    table, overlaps, _ = derive_labels(["call1"], folder, words, None, shipped(), progress=False)
    assert table.label.tolist() == EXPECTED
    said = [text for channel, text, _ in SCRIPT if text != "yeah"][:6]
    assert table.text.tolist() == said
    assert overlaps.text.tolist() == ["yeah", "oh and what did you buy there"]


def test_a_mono_call_with_its_diarization_is_labelled_as_the_stereo_one(call):
    folder, words, _ = call
    turns = words.drop(columns="text")
    table, _, _ = derive_labels(["mono1"], folder, None, turns.assign(video_id="mono1"), shipped(), progress=False)
    assert table.label.tolist() == EXPECTED


def test_recordings_that_cannot_be_labelled_are_counted_with_their_reason(call, tmp_path):
    folder, words, audio = call
    sf.write(tmp_path / "mono.flac", audio.mean(axis=1), RATE)
    sf.write(tmp_path / "one_sided.flac", audio * [1, 0], RATE)
    sf.write(tmp_path / "three.flac", np.c_[audio, audio[:, :1]], RATE)
    sf.write(tmp_path / "short.flac", audio[: 5 * RATE], RATE)
    late = words.assign(video_id="short")
    table, _, skipped = derive_labels(["mono", "one_sided", "three", "short", "absent"], tmp_path, late, None,
                                      shipped(), progress=False)
    assert table.empty
    reasons = dict(zip(skipped.video_id, skipped.detail, strict=True))
    assert reasons["mono"].startswith("mono recording without diarization")
    assert reasons["one_sided"].startswith("no speech on channel 1")
    assert reasons["three"].startswith("3 channels")
    assert "past the recording's end" in reasons["short"]
    assert "recording not found" in reasons["absent"]


def test_matching_pairs_each_utterance_once_nearest_first():
    derived = pd.DataFrame({"video_id": "v", "speaker": 0, "end": [1.0, 1.2, 5.0], "label": [0, 1, 2]})
    given = pd.DataFrame({"video_id": "v", "speaker": 0, "end": [1.05, 9.0], "label": [1, 2]})
    pairs = match_utterances(derived, given, 0.3)
    assert pairs[["derived_label", "given_label"]].values.tolist() == [[0, 1]]  # 1.0 is nearer 1.05 than 1.2
    report = agreement(derived.assign(label=[1, 1, 2]), given, 0.3)
    assert (report["matched"], report["given"], report["derived"]) == (1, 2, 3)
    assert report["kappa"] is None  # one class only: undefined, not NaN in a JSON report


def test_the_stage_passes_given_labels_on_and_derives_them_for_a_source_without(call, tmp_path):
    folder, words, _ = call
    source = tmp_path / "source"
    source.mkdir()
    pd.DataFrame({"video_id": ["call1"], "url": ["x"]}).to_csv(source / "manifest.csv", index=False)
    words.to_csv(source / "transcripts.csv", index=False)
    table, _, _, report = label_source(source, folder, shipped(labels="auto"), progress=False)
    assert report["labels"] == "derived" and table.label.tolist() == EXPECTED
    with pytest.raises(DataError, match="utterances.csv: not found; this source has no labels of its own"):
        label_source(source, folder, shipped(labels="given"), progress=False)
    given = table.assign(label=[SHIFT, KEEP, SHIFT, SHIFT, SHIFT, SHIFT], sentence_id=[f"g{i}" for i in range(6)])
    given.to_csv(source / "utterances.csv", index=False)
    assert label_source(source, folder, shipped(labels="auto"), progress=False)[0] is None  # given labels win
    _, _, _, report = label_source(source, folder, shipped(labels="derived"), progress=False)
    assert report["agreement_with_given"]["matched"] == 6
    assert report["agreement_with_given"]["per_class_f1"]["keep"] == 1.0
    assert report["agreement_with_given"]["confusion"]["given_shift"]["backchannel"] == 1
    assert json.dumps(report)  # the report is JSON as written


def quiet_mono(folder, seconds=12.0):
    sf.write(folder / "m.flac", np.zeros(int(seconds * RATE), dtype=np.float32), RATE)


def test_words_and_the_activity_they_miss_are_merged_across_short_pauses(tmp_path):
    quiet_mono(tmp_path)
    turns = pd.DataFrame({"video_id": "m", "speaker": [0, 0, 0, 1], "start": [0.0, 1.8, 5.0, 3.0],
                          "end": [1.5, 2.3, 7.0, 4.0]})
    words = pd.DataFrame({"video_id": "m", "speaker": [0, 0], "start": [0.1, 1.0], "end": [0.9, 1.7],
                          "text": ["hello", "there"]})
    table, _, _ = derive_labels(["m"], tmp_path, words, turns, shipped(), progress=False)
    first = table.iloc[0]
    assert (first.start, first.end, first.text) == (0.1, 2.3, "hello there")  # 0.1 s to the unworded activity


def test_a_mono_call_with_diarized_words_needs_no_rttm_and_late_turns_are_refused(tmp_path):
    quiet_mono(tmp_path)
    words = pd.DataFrame({"video_id": "m", "speaker": [0, 1, 0, 1], "start": [0.5, 3.0, 6.0, 9.0],
                          "end": [2.5, 5.0, 8.0, 10.0], "text": ["we went there", "did you like it",
                                                                 "yes it was great", "good to hear"]})
    table, _, _ = derive_labels(["m"], tmp_path, words, None, shipped(), progress=False)
    assert table.label.tolist() == [SHIFT, SHIFT, SHIFT]
    late = words.assign(start=words.start + 100, end=words.end + 100).drop(columns="text")
    table, _, skipped = derive_labels(["m"], tmp_path, None, late, shipped(), progress=False)
    assert table.empty and "diarization turns end at 110.00 s, past the recording's end" in skipped.detail.iat[0]


def test_agreement_leaves_out_a_class_neither_side_says_and_pairs_one_to_one():
    table = pd.DataFrame({"video_id": "v", "speaker": 0, "end": [1.0, 2.0, 3.0], "label": [KEEP, SHIFT, KEEP]})
    report = agreement(table, table, 0.3)
    assert report["macro_f1"] == 1.0 and report["per_class_f1"]["backchannel"] is None
    assert [(i, j) for i, j, _ in pair_times(np.array([1.0, 1.2]), np.array([1.15, 1.45]), 0.3)] == [(0, 0), (1, 1)]
    overlaps = pd.DataFrame({"video_id": "v", "outcome": "backchannel", "start": [1.0, 1.1, 1.2]})
    given = pd.DataFrame({"video_id": "v", "listener_start": [1.05, 20.0, 40.0]})
    found = backchannel_agreement(overlaps, given, {"v"}, 0.3)
    assert (found["matched"], found["precision"], found["recall"]) == (1, 0.3333, 0.3333)


def test_activity_without_words_is_found_as_a_brute_force_scan_finds_it():
    from turnfusion.data.label import _overlaps_any
    from turnfusion.data.turn_events import merge_units

    rng = np.random.default_rng(0)
    for _ in range(200):
        def units(n):
            starts = np.sort(rng.uniform(0, 30, n))
            return merge_units(0, [(s, s + rng.uniform(0.05, 2), "w") for s in starts], 0.0)

        words, activity = units(int(rng.integers(0, 12))), units(int(rng.integers(1, 12)))
        ends = [w.end for w in words]
        for u in activity:
            assert _overlaps_any(u, words, ends) == any(w.start < u.end and u.start < w.end for w in words)

import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import soxr

from turnfusion.config import OnsetGateConfig
from turnfusion.data.sources import speech
from turnfusion.errors import DataError
from turnfusion.live.onset_gate import (
    VAD_RATE,
    OnsetGate,
    OnsetTracker,
    feature_count,
    first_window,
    onset_features,
    window_samples,
)
from turnfusion.training.onset_gate import (
    BACKCHANNEL,
    TURN,
    OnsetExample,
    choose_threshold,
    example_windows,
    fit_gate,
    onset_examples,
)

BACKCHANNELS = ["mm-hm", "mhm", "yeah", "uh-huh", "right", "okay"]
STARTS = ["what do you mean by that", "wait i have a question", "so we went to the market", "no that is not it",
          "my brother told me", "can you say that again", "they never came back", "hold on a second please"]


def spoken(text: str, voice: speech.Voice | None = None, amplitude: float = 0.6) -> np.ndarray:
    clip = soxr.resample(speech.speak(text, voice or speech.Voice()), speech.sample_rate(), VAD_RATE).astype(np.float32)
    voiced = np.flatnonzero(np.abs(clip) > 1e-3)
    clip = clip[voiced[0]: voiced[-1] + 1]
    return amplitude * clip / np.abs(clip).max()


def stream(*pieces) -> np.ndarray:
    return np.concatenate([np.asarray(p, np.float32) if not isinstance(p, float) else np.zeros(int(p * VAD_RATE),
                                                                                                 np.float32)
                           for p in pieces])


def test_features_ignore_the_level_and_see_what_is_said():
    wave = spoken("what do you mean")[:window_samples(0.2)]
    loud, quiet = onset_features(wave), onset_features(0.05 * wave)
    assert loud.shape == (feature_count(),)
    np.testing.assert_allclose(loud, quiet, atol=1e-4)  # a recording's gain says nothing of what is said
    other = onset_features(spoken("mm-hm")[:window_samples(0.2)])
    assert np.abs(other - loud).max() > 1.0
    with pytest.raises(DataError, match="at least 400 samples"):
        onset_features(wave[:100])


def windows_of(wave, chunk_s):
    tracker, out = OnsetTracker(VAD_RATE, 0.2), []
    step = int(chunk_s * VAD_RATE)
    for k in range(0, len(wave), step):
        window = tracker.push(wave[k:k + step])
        if window is not None:
            out.append((tracker.onset_s, window))
    return out


def test_the_tracker_cuts_a_window_a_frame_before_each_onset_whatever_the_chunks():
    words = spoken("so we went to the market on saturday")
    wave = stream(0.5, words, 0.6, words, 0.5)
    windows = windows_of(wave, 0.02)  # as pipecat's 20 ms frames come
    onsets = [onset for onset, _ in windows]
    second = 0.5 + len(words) / VAD_RATE + 0.6
    assert abs(onsets[0] - 0.5) < 0.1 and any(abs(o - second) < 0.1 for o in onsets)  # Silero's: "s" is no voice
    for onset, window in windows:  # a frame before the onset, then 0.2 s of speech
        assert len(window) == window_samples(0.2)
        np.testing.assert_array_equal(window, wave[round((onset - 0.032) * VAD_RATE):][:len(window)])
    for chunk_s in (0.032, 0.1):
        again = windows_of(wave, chunk_s)
        assert [o for o, _ in again] == onsets and all(np.array_equal(a, b) for (_, a), (_, b) in
                                                        zip(again, windows, strict=True))


def test_speech_that_ends_within_the_window_gives_none_and_a_search_skips_earlier_onsets():
    tracker = OnsetTracker(VAD_RATE, 0.5)
    assert tracker.push(stream(0.5, spoken("yes"), 1.0)) is None  # over before 0.5 s: its words decide
    first, second = spoken("my brother told me"), spoken("can you say that again")
    wave = stream(0.3, first, 0.5, second, 0.3)
    at = 0.3 + len(first) / VAD_RATE + 0.5
    window = first_window(OnsetTracker(VAD_RATE, 0.2), wave, at - 0.1, at + 0.2)
    onset = np.flatnonzero([np.array_equal(window, wave[k:k + len(window)]) for k in range(0, len(wave), 512)])
    assert len(onset) == 1 and abs(onset[0] * 512 / VAD_RATE + 0.032 - at) < 0.1  # the second onset's window
    assert first_window(OnsetTracker(VAD_RATE, 0.2), wave, 0.0, 0.1) is None  # none that early


def test_examples_take_each_speakers_own_channel_and_count_mono_recordings():
    segments = pd.DataFrame([
        # video, speaker, start, listener_start, stereo, split, excluded
        ("a", 0, 1.0, np.nan, True, "train", False), ("a", 1, 3.0, 4.5, True, "train", False),
        ("a", 0, 6.0, np.nan, True, "train", True),  # excluded: no example
        ("a", 2, 7.0, np.nan, True, "train", False), ("a", 0, np.inf, np.nan, True, "train", False),  # counted
        ("m", 0, 1.0, 2.0, False, "val", False)],
        columns=["video_id", "speaker", "start", "listener_start", "stereo", "split", "excluded"])
    overlaps = pd.DataFrame([("a", 1, 8.0, "backchannel"), ("a", 0, 9.0, "barge_in"), ("m", 0, 3.0, "backchannel"),
                             ("a", 0, np.nan, "backchannel")], columns=["video_id", "listener", "start", "outcome"])
    examples, left_out = onset_examples(segments, overlaps)
    got = sorted((e.channel, e.start, e.kind, e.split) for e in examples)
    assert got == [(0, 1.0, TURN, "train"), (0, 4.5, BACKCHANNEL, "train"),  # the listener of speaker 1 is channel 0
                   (1, 3.0, TURN, "train"), (1, 8.0, BACKCHANNEL, "train")]  # the label stage's derived one
    assert left_out == {"mono_recordings": 1, "mono_utterances": 1, "bad_time_or_speaker": 3}


def test_the_threshold_lets_no_more_val_backchannels_through_than_allowed():
    turns, backchannels = np.array([0.01, 0.05, 0.2, 0.6]), np.array([0.3, 0.7, 0.8, 0.9])
    strict = choose_threshold(turns, backchannels, 0.0)
    assert 0.2 < strict < 0.3  # between the highest turn it can catch and the lowest backchannel
    assert (backchannels < strict).sum() == 0 and (turns < strict).sum() == 3
    loose = choose_threshold(turns, backchannels, 0.25)  # one of four may stop the agent
    assert 0.6 < loose < 0.7 and (backchannels < loose).sum() == 1
    assert choose_threshold(np.array([0.9]), backchannels, 0.0) == 0.0  # nothing to catch: never interrupt


@pytest.fixture(scope="module")
def two_channel_calls(tmp_path_factory):
    """Three stereo calls (train / val / test) in two voices: utterances on the speaker's channel, backchannels
    on the listener's, quieter, as in the demo corpus; the table the segment stage would give."""
    root = tmp_path_factory.mktemp("calls")
    voices = [speech.Voice(), speech.Voice(name="en-us", pitch=35)]
    rng, rows = np.random.default_rng(0), []
    for call, split in enumerate(["train", "val", "test"]):
        tracks, t = [[np.zeros(int(0.5 * VAD_RATE), np.float32)] for _ in range(2)], 0.5
        for k in range(12):
            speaker = k % 2
            words = spoken(STARTS[rng.integers(len(STARTS))], voices[speaker], 0.9)
            bc = spoken(BACKCHANNELS[rng.integers(len(BACKCHANNELS))], voices[1 - speaker], 0.5)
            pad = np.zeros(int(0.8 * VAD_RATE), np.float32)
            tracks[speaker] += [words, np.zeros(len(bc), np.float32), pad]
            tracks[1 - speaker] += [np.zeros(len(words), np.float32), bc, pad]
            rows.append((f"call{call}", speaker, t, t + len(words) / VAD_RATE, split))
            t += (len(words) + len(bc) + len(pad)) / VAD_RATE
        sf.write(root / f"call{call}.flac", np.stack([np.concatenate(x) for x in tracks], axis=1), VAD_RATE)
    table = pd.DataFrame(rows, columns=["video_id", "speaker", "start", "end", "split"])
    table["listener_start"], table["stereo"], table["excluded"] = table.end, True, False
    return root, table


def test_a_gate_trained_on_two_channel_calls_tells_backchannels_from_turn_starts(two_channel_calls, tmp_path):
    root, table = two_channel_calls
    examples, _ = onset_examples(table, pd.DataFrame(columns=["video_id", "listener", "start", "outcome"]))
    features, levels, found = example_windows(examples, root, 0.2, seed=0)
    assert len(found) >= 0.9 * len(examples)
    in_processes = example_windows(examples, root, 0.2, seed=0, workers=3)  # a call a process: the same windows
    assert in_processes[2] == found and np.array_equal(in_processes[0], features)
    beyond = [OnsetExample("call0", 2, examples[0].start, TURN, "train")]  # a third speaker on a two-channel call
    assert example_windows(beyond, root, 0.2, seed=0)[2] == []  # no window, no traceback
    kinds = np.array([examples[i].kind for i in found])
    splits = np.array([examples[i].split for i in found], dtype=object)
    gate = fit_gate(features, kinds, splits, OnsetGateConfig(window_s=0.2, max_false_stop=0.0, c=1.0, seed=0))
    test = gate.trained_on["test"]
    assert test["turns_interrupted"] >= 0.5 and test["backchannels_stopping"] <= 0.25  # chance: about 0 and 0
    assert OnsetGate.load(gate.save(tmp_path / "gate").parent) == gate


def test_a_gate_file_is_checked_field_by_field(tmp_path):
    gate = OnsetGate(window_s=0.2, mean=(0.0,) * feature_count(), scale=(1.0,) * feature_count(),
                     coef=(0.1,) * feature_count(), intercept=0.0, threshold=0.5, max_false_stop=0.0,
                     trained_on={})
    path = gate.save(tmp_path / "g")
    good = json.loads(path.read_text())
    cases = {"coef": [0.1] * 3, "scale": [0.0] * feature_count(), "threshold": 2.0, "format": 9,
             "window_s": float("nan"), "intercept": "1"}
    cases_text = {"intercept": 10 ** 400, "format": True, "scale": [1e-300] * feature_count(),
                  "coef": [1e300] * feature_count()}
    for field, value in cases.items():
        path.write_text(json.dumps({**good, field: value}))
        with pytest.raises(DataError, match=field) as exc:
            OnsetGate.load(tmp_path / "g")
        assert "\n" not in str(exc.value) and str(path) in str(exc.value)
    for field, value in cases_text.items():  # past float's range, a bool for a number, a division by ~0
        path.write_text(json.dumps({**good, field: value}))
        with pytest.raises(DataError, match=field):
            OnsetGate.load(tmp_path / "g")
    path.write_text("[" * 100_000 + "]" * 100_000)  # nested past Python's recursion limit
    with pytest.raises(DataError, match="no onset gate"):
        OnsetGate.load(tmp_path / "g")
    extreme = OnsetGate(**{**gate.__dict__, "intercept": -1e6})  # the logit's bound: no overflow, P ~ 0
    assert extreme.p_backchannel(spoken("hello there")[:window_samples(0.2)]) < 1e-100
    path.write_text(json.dumps({**good, "extra": 1}))
    with pytest.raises(DataError, match="fields must be"):
        OnsetGate.load(tmp_path / "g")
    path.write_text("{not json")
    with pytest.raises(DataError, match="no onset gate"):
        OnsetGate.load(tmp_path / "g")
    OnsetGate.save_untrained(tmp_path / "u", "the train split has 10 turn and 0 backchannel onsets")
    with pytest.raises(DataError, match="no onset gate was trained .*0 backchannel"):
        OnsetGate.load(tmp_path / "u")


def test_the_stage_on_a_corpus_without_two_channel_recordings_writes_a_gate_that_says_why(tmp_path):
    import shutil

    from conftest import REPO, run_module

    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    pd.DataFrame([("m", 0, 1.0, np.nan, False, "train", False), ("m", 1, 3.0, np.nan, False, "val", False)],
                 columns=["video_id", "speaker", "start", "listener_start", "stereo", "split", "excluded"]
                 ).to_parquet(tmp_path / "segments.parquet")
    pd.DataFrame(columns=["video_id", "listener", "start", "end", "floor_holder_end", "overlap_s", "outcome", "text"]
                 ).to_csv(tmp_path / "overlaps.csv", index=False)
    (tmp_path / "raw").mkdir()
    run_module(tmp_path, "stages.onset_gate", "--segments", "segments.parquet", "--overlaps", "overlaps.csv",
               "--audio", "raw", "--out", "gate", "--report", "report.json")
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["trained"] is False and report["mono_recordings"] == 1 and report["onsets"] == 0
    with pytest.raises(DataError, match="no onset gate was trained .*train split has 0 turn and 0 backchannel"):
        OnsetGate.load(tmp_path / "gate")

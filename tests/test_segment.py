import shutil

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from conftest import tone, utterance_table

from turnfusion.config import SegmentConfig, SplitConfig
from turnfusion.data.segment import build_store, listener_overlap, segment
from turnfusion.data.stores import SegmentStore
from turnfusion.schema import DataError
from turnfusion.serving.processing import cut_row, segment_policy, timestamp_problem


def cfg(max_seconds=3.0, channels="mix", trim_to_speech=False, conflicting="keep"):
    return SegmentConfig(sample_rate=16000, max_seconds=max_seconds, channels=channels,
                         trim_to_speech=trim_to_speech, trim_vad_threshold=0.5, conflicting_labels=conflicting)


@pytest.mark.parametrize("start,end,problem", [
    (float("nan"), 1.0, "nan_timestamp"), (1.0, float("nan"), "nan_timestamp"), (-0.5, 1.0, "negative_start"),
    (2.0, 2.0, "start_not_before_end"), (2.5, 1.0, "start_not_before_end"), (3.0, 5.0, "beyond_recording"),
    (1.0, 3.5, "beyond_recording"), (0.0, 3.02, None), (1.0, 2.0, None)])
def test_timestamp_problems(start, end, problem):
    assert timestamp_problem(start, end, duration=3.0) == problem


def test_store_cuts_resamples_and_skips_bad_rows_with_reasons(recording_dir, tmp_path):
    table = utterance_table([
        ("v1", "v1_0_0", "hello there", 0, 0.0, 1.0, 0),
        ("v1", "v1_1_1", "a long one", 1, 1.0, 4.0, 1),   # 3 s, cut to the last 2 s
        ("v1", "v1_0_2", "bad", 0, 2.0, 1.5, 0),           # start >= end
        ("v1", "v1_0_3", "late", 0, 3.5, 9.0, 0),          # beyond the recording
        ("v1", "v1_0_4", None, 0, 0.5, 1.0, 0),            # NaN text
        ("v2", "v2_2_0", "okay", 2, 0.5, 1.5, 0),
        ("v3", "v3_0_0", "no audio", 0, 0.0, 1.0, 0),      # missing recording
    ])
    table["split"] = "train"
    index, skipped = build_store(table, recording_dir, tmp_path / "store", cfg(max_seconds=2.0), progress=False)
    assert index.sentence_id.tolist() == ["v1_0_0", "v1_1_1", "v2_2_0"]
    assert index.n_samples.tolist() == [16000, 32000, 16000]
    assert index.position.tolist() == [0, 1, 0]
    reasons = dict(zip(skipped.sentence_id, skipped.reason, strict=True))
    assert reasons == {"v1_0_2": "start_not_before_end", "v1_0_3": "beyond_recording", "v1_0_4": "empty_text",
                       "v3_0_0": "unreadable_recording"}
    store = SegmentStore.open(tmp_path / "store")
    assert store.sample_rate == 16000
    wave = store.waveform(1)
    assert wave.dtype == np.float32 and len(wave) == 32000
    assert 0.15 < np.abs(wave).max() < 0.25  # mix of 0.3 and 0.1 tones


def test_the_store_keeps_the_audio_policy_it_was_cut_with(recording_dir, tmp_path):
    table = utterance_table([("v1", "v1_0", "hello there", 0, 0.0, 1.0, 0)]).assign(split="train")
    build_store(table, recording_dir, tmp_path / "a", cfg(max_seconds=2.0, channels="speaker"), progress=False)
    assert SegmentStore.open(tmp_path / "a").audio_policy() == {"sample_rate": 16000, "max_seconds": 2.0,
                                                                "channels": "speaker", "trim_vad_threshold": None,
                                                                "window_hop": 1}
    build_store(table, recording_dir, tmp_path / "b", cfg(trim_to_speech=True), progress=False)
    assert SegmentStore.open(tmp_path / "b").audio_policy()["trim_vad_threshold"] == 0.5


def test_a_window_hop_cuts_long_segments_whole_hops_in_and_a_store_cut_before_it_existed_still_reads(recording_dir,
                                                                                                    tmp_path):
    import dataclasses
    import json

    from turnfusion.audio import read_resampled, recording_path
    from turnfusion.serving.processing import AUDIO_POLICY_FILE, ProcessorConfig

    table = utterance_table([("v1", "v1_0", "hello there", 0, 0.0, 1.51, 0)]).assign(split="train")
    for hop in (1, 320):
        build_store(table, recording_dir, tmp_path / str(hop),
                    dataclasses.replace(cfg(max_seconds=1.0), window_hop=hop), progress=False)
    recording = read_resampled(recording_path(recording_dir, "v1"), 16000)
    whole = cut_row(recording, 16000, next(table.itertuples(index=False)), "mix")[0]
    exact, on_hops = (SegmentStore.open(tmp_path / str(hop)).waveform(0) for hop in (1, 320))
    assert len(whole) == 24160 and len(exact) == 16000 and len(on_hops) == 24160 - 8320  # 8160 to cut: 26 hops
    assert np.allclose(on_hops, whole[8320:], atol=1 / 32767) and np.allclose(exact, whole[8160:], atol=1 / 32767)
    old = tmp_path / "1" / AUDIO_POLICY_FILE  # a store cut before the field: the last max_seconds exactly
    policy = json.loads(old.read_text())
    old.write_text(json.dumps({k: v for k, v in policy.items() if k != "window_hop"}))
    assert SegmentStore.open(tmp_path / "1").audio_policy().get("window_hop") is None
    tokens = tmp_path / "tokens"
    tokens.mkdir()
    ProcessorConfig.from_dict({**policy, "max_length": 8, "n_previous": 0, "punctuation": "strip",
                               "trim_overlap": False}, "test").save_pretrained(tokens)
    assert ProcessorConfig.of_token_store(tokens, SegmentStore.open(tmp_path / "1").audio_policy()).window_hop == 1
    with pytest.raises(DataError, match="window_hop: 1 != 320"):
        ProcessorConfig.of_token_store(tokens, SegmentStore.open(tmp_path / "320").audio_policy())


def test_a_corpus_without_words_keeps_its_rows_and_one_with_words_skips_the_unworded(recording_dir, tmp_path):
    rows = [("v1", "v1_0", "", 0, 0.0, 1.0, 0), ("v1", "v1_1", None, 1, 1.0, 2.0, 1),
            ("v2", "v2_0", " ?! ", 2, 0.5, 1.5, 0)]
    index, skipped = build_store(utterance_table(rows).assign(split="train"), recording_dir, tmp_path / "a", cfg(),
                                 progress=False)
    assert index.sentence_id.tolist() == ["v1_0", "v1_1", "v2_0"] and skipped.empty
    rows[2] = ("v2", "v2_0", "okay", 2, 0.5, 1.5, 0)  # one row with words: the others cannot join the text path
    index, skipped = build_store(utterance_table(rows).assign(split="train"), recording_dir, tmp_path / "b", cfg(),
                                 progress=False)
    assert index.sentence_id.tolist() == ["v2_0"]
    assert dict(zip(skipped.sentence_id, skipped.reason, strict=True)) == {"v1_0": "empty_text", "v1_1": "empty_text"}


@pytest.mark.parametrize("policy", ["keep", "drop"])
def test_identical_windows_with_different_labels_are_counted_and_kept_or_dropped(recording_dir, tmp_path, policy):
    from turnfusion.config import SplitConfig
    from turnfusion.data.segment import segment

    table = utterance_table([("v1", "v1_0_0", "can you hear me", 0, 0.0, 1.0, 0),  # one input, two answers
                             ("v1", "v1_1_0", "can you hear me", 1, 0.0, 1.0, 0),
                             ("v1", "v1_1_1", "can you hear me", 1, 1.0, 2.0, 0),  # same words, other times
                             ("v1", "v1_2_1", "you hear me", 2, 1.0, 2.0, 1),  # same times, other speaker
                             ("v2", "v2_0_0", "okay", 0, 0.5, 1.5, 0), ("v2", "v2_1_0", "okay", 0, 0.5, 1.5, 0),
                             ("v3", "v3_0_0", "okay", 0, 0.5, 1.5, 0)])
    table["split"] = ["train", "train", "train", "train", "val", "val", "test"]
    shutil.copy(recording_dir / "v2.wav", recording_dir / "v3.wav")
    index, skipped, report = segment(table, recording_dir, tmp_path / "store", cfg(conflicting=policy),
                                     SplitConfig(0.2, 0.2, 0))
    assert report["conflicting_label_groups"] == 1 and len(index) == 7 and skipped.empty  # all stay in the store
    excluded = sorted(index.sentence_id[index.excluded])
    # v2: the same window twice with the same label is no conflict; `drop` only excludes from training and scoring
    assert excluded == ([] if policy == "keep" else ["v1_0_0", "v1_1_0"])
    assert report["excluded_conflicting"] == len(excluded)


def test_speaker_channel_policy_takes_the_speakers_channel(recording_dir, tmp_path):
    table = utterance_table([("v1", "a", "left", 0, 0.0, 1.0, 0), ("v1", "b", "right", 1, 1.0, 2.0, 1)])
    table["split"] = "train"
    build_store(table, recording_dir, tmp_path / "s", cfg(channels="speaker"), progress=False)
    store = SegmentStore.open(tmp_path / "s")
    assert np.abs(store.waveform(0)).max() == pytest.approx(0.3, abs=0.01)
    assert np.abs(store.waveform(1)).max() == pytest.approx(0.1, abs=0.01)


def test_all_rows_bad_is_a_clear_error(recording_dir, tmp_path):
    table = utterance_table([("v1", "a", "x", 0, 5.0, 6.0, 0)])
    with pytest.raises(DataError, match="every row was skipped"):
        build_store(table, recording_dir, tmp_path / "s", cfg(), progress=False)


def test_open_missing_store_names_the_file(tmp_path):
    with pytest.raises(DataError, match="audio.npy"):
        SegmentStore.open(tmp_path)


def test_cut_row_validates_cuts_and_keeps_the_end():
    recording = np.stack([np.arange(48000), -np.arange(48000)], axis=1).astype(np.float32)  # 3 s at 16 kHz
    rows = utterance_table([("v", "a", "words", 0, 0.5, 2.5, 1), ("v", "b", "words", 0, 0.5, 9.0, 1),
                            ("v", "c", " ", 0, 0.5, 1.0, 0)])
    good, late, empty = rows.itertuples(index=False)
    wave, problem = cut_row(recording, 16000, good, "speaker")
    assert problem == "" and wave.tolist() == (-np.arange(8000, 40000)).tolist()  # speaker 1's channel
    assert segment_policy(wave, 16000, 1.0, None) == (pytest.approx(wave[-16000:]), 0.0)  # the last 1 s
    mixed, _ = cut_row(recording, 16000, good, "mix")
    assert len(mixed) == 32000 and (mixed == 0).all()
    assert cut_row(recording, 16000, late, "mix") == (None, "beyond_recording")
    assert cut_row(recording, 16000, empty, "mix") == (None, "empty_text")


def test_a_row_with_an_audio_span_is_cut_there_and_its_annotated_window_still_checked():
    recording = np.arange(48000, dtype=np.float32)[:, None]  # 3 s at 16 kHz, mono
    rows = utterance_table([("v", "a", "words", 0, 10.0, 12.0, 0), ("v", "b", "words", 0, 12.0, 11.0, 0),
                            ("v", "c", "words", 0, 1.0, 2.0, 0)])
    rows = rows.assign(audio_start=[0.5, 0.5, 2.5], audio_end=[1.0, 1.0, 9.0])
    spanned, backwards, late = rows.itertuples(index=False)
    wave, problem = cut_row(recording, 16000, spanned, "mix")  # annotated at 10-12 s, its audio at 0.5-1 s
    assert problem == "" and wave.tolist() == np.arange(8000, 16000).tolist()
    assert cut_row(recording, 16000, backwards, "mix") == (None, "start_not_before_end")
    assert cut_row(recording, 16000, late, "mix") == (None, "beyond_recording")


def test_every_row_is_in_the_store_or_skipped_with_its_reason(recording_dir, tmp_path):
    samples = tone(3, 16000)
    samples[20000] = np.nan  # one bad sample in the second second
    sf.write(recording_dir / "nan.wav", samples, 16000, subtype="FLOAT")
    table = utterance_table([
        ("v1", "ok", "hello there", 0, 0.0, 1.0, 0), ("", "novideo", "hello", 0, 0.0, 1.0, 0),
        ("v1", "punct", "?!", 0, 1.0, 2.0, 0), ("v1", "speaker", "hello", 0, 1.0, 2.0, 5),
        ("nan", "clean", "before the nan", 0, 0.0, 1.0, 0), ("nan", "dirty", "around the nan", 0, 1.0, 2.0, 0)])
    table.loc[1, "video_id"] = np.nan
    table["split"] = "train"
    index, skipped = build_store(table, recording_dir, tmp_path / "s", cfg(), progress=False)
    assert sorted(index.sentence_id) == ["clean", "ok"]
    assert dict(zip(skipped.sentence_id, skipped.reason, strict=True)) == {
        "novideo": "empty_video_id", "punct": "empty_text", "speaker": "bad_speaker", "dirty": "non_finite_audio"}
    store = SegmentStore.open(tmp_path / "s")
    assert all(np.isfinite(store.waveform(i)).all() for i in range(len(store.index)))


def test_an_empty_split_is_an_error_that_names_the_param(recording_dir, tmp_path):
    table = utterance_table([("v1", "a", "hello", 0, 0.0, 1.0, 0), ("v2", "b", "hello", 0, 0.0, 1.0, 0)])
    table["split"] = "val"  # as with the shipped MM-F2F params: a val file only
    with pytest.raises(DataError, match=r"split\(s\) \['train', 'test'\] have no usable .*mmf2f.annotations"):
        segment(table, recording_dir, tmp_path / "s", cfg(), SplitConfig(0.15, 0.22, 0))


def test_an_interrupted_write_leaves_no_torn_store_and_a_rerun_gives_the_same_bytes(recording_dir, tmp_path,
                                                                                   monkeypatch):
    table = utterance_table([("v1", "a", "hello", 0, 0.0, 1.0, 0), ("v2", "b", "there", 1, 0.5, 2.0, 0)])
    table["split"] = "train"
    build_store(table, recording_dir, tmp_path / "clean", cfg(), progress=False)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pd.DataFrame, "to_parquet", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build_store(table, recording_dir, tmp_path / "s", cfg(), progress=False)
    assert not (tmp_path / "s" / "audio.npy").exists() and not (tmp_path / "s" / "segments.parquet").exists()
    monkeypatch.undo()
    build_store(table, recording_dir, tmp_path / "s", cfg(), progress=False)
    for name in ("audio.npy", "segments.parquet"):
        assert (tmp_path / "s" / name).read_bytes() == (tmp_path / "clean" / name).read_bytes()


def test_trimming_moves_a_segment_end_back_to_the_last_speech_and_reports_it(tmp_path):
    from test_drop_silent import speech

    said = speech(2.0, 16000)
    said[int(1.4 * 16000):] = 0  # speech up to about 1.4 s
    recording = np.concatenate([said, np.random.default_rng(0).normal(0, 1e-3, 16000)]).astype(np.float32)
    (tmp_path / "raw").mkdir()
    sf.write(tmp_path / "raw" / "v.wav", recording, 16000)
    table = utterance_table([("v", "a", "hello there", 0, 0.0, 2.9, 0)])  # a loose end, as ASR gives
    table["split"] = "train"
    kept, _ = build_store(table, tmp_path / "raw", tmp_path / "s", cfg(), progress=False)
    trimmed, _ = build_store(table, tmp_path / "raw", tmp_path / "t", cfg(trim_to_speech=True), progress=False)
    assert kept.n_samples[0] == int(2.9 * 16000)
    end = trimmed.n_samples[0] / 16000
    assert 1.2 < end < 1.7 and trimmed.trimmed_s[0] == pytest.approx(2.9 - end, abs=1e-3)
    wave, moved = segment_policy(recording[: int(2.9 * 16000)], 16000, 3.0, 0.5)  # what prediction does
    assert len(wave) == trimmed.n_samples[0] and moved == pytest.approx(trimmed.trimmed_s[0])


def test_conversation_order_is_by_time_never_by_the_label_bearing_sentence_id():
    from turnfusion.schema import conversation_order

    # MM-F2F ids are {video}_{label}_{idx}: two rows starting together must not be ordered by their label
    table = utterance_table([("v", "v_2_0", "b", 2, 1.0, 3.0, 1), ("v", "v_0_0", "a", 0, 1.0, 2.0, 0),
                             ("v", "v_1_0", "c", 1, 0.5, 4.0, 0), ("v", "v_0_1", "d", 0, 1.0, 3.0, 0)])
    assert conversation_order(table).sentence_id.tolist() == ["v_1_0", "v_0_0", "v_0_1", "v_2_0"]
    relabelled = table.assign(sentence_id=["v_0_9", "v_2_9", "v_0_8", "v_1_8"])
    assert conversation_order(relabelled).text.tolist() == conversation_order(table).text.tolist()


def test_listener_overlap_is_another_speaker_or_a_listener_event_in_the_last_moment():
    conv = utterance_table([
        ("v", "a", "x", 0, 0.0, 2.0, 0),  # speaker 1 starts 0.1 s before its end: overlap
        ("v", "b", "x", 1, 1.9, 3.0, 1),  # nobody else after 2.0
        ("v", "c", "x", 0, 3.5, 4.0, 0),  # the same speaker's next row does not count
        ("v", "d", "x", 0, 4.0, 5.0, 0),  # listener event ends 0.2 s before the end: outside the 0.15 s window
        ("v", "e", "x", 2, 6.0, 7.0, 0),  # listener event starting at the end: overlap only if it starts before it
    ])
    conv["listener_start"] = [np.nan, np.nan, np.nan, 4.5, 6.95]
    conv["listener_end"] = [np.nan, np.nan, np.nan, 4.8, 7.3]
    assert listener_overlap(conv).tolist() == [True, False, False, False, True]
    assert listener_overlap(conv.drop(columns=["listener_start", "listener_end"])).tolist() == [
        True, False, False, False, False]


def test_the_index_says_which_rows_are_stereo_and_overlapped(recording_dir, tmp_path):
    table = utterance_table([("v1", "a", "left", 0, 0.0, 1.0, 0), ("v1", "b", "right", 1, 0.95, 2.0, 1),
                             ("v2", "c", "mono", 0, 0.0, 1.0, 0)])
    table["split"] = "train"
    index, _ = build_store(table, recording_dir, tmp_path / "s", cfg(channels="speaker"), progress=False)
    assert index.stereo.tolist() == [True, True, False]
    assert index.overlap.tolist() == [True, False, False]

import numpy as np
import pandas as pd

from turnfusion.evaluation.probe import run_probes


def split(n, rng, text_says: bool, audio_says: bool):
    labels = rng.integers(0, 3, n)
    words = np.array(["so we went", "did you", "mm"])
    text = words[labels] if text_says else rng.choice(words, n)
    audio = rng.normal(0, 1, (n, 4)) + (3.0 * np.eye(3, 4)[labels] if audio_says else 0.0)
    return pd.DataFrame({"text": text, "label": labels}), audio


def test_each_probe_hears_only_what_its_modality_carries():
    rng = np.random.default_rng(0)
    (train, train_audio), (test, test_audio) = split(600, rng, True, False), split(300, rng, True, False)
    scores = run_probes(train, test, train_audio, test_audio)
    assert scores["text_macro_f1"] > 0.95 and scores["audio_macro_f1"] < 0.45 and scores["both_macro_f1"] > 0.9
    (train, train_audio), (test, test_audio) = split(600, rng, False, True), split(300, rng, False, True)
    scores = run_probes(train, test, train_audio, test_audio)
    assert scores["text_macro_f1"] < 0.45 and scores["audio_macro_f1"] > 0.85 and scores["both_macro_f1"] > 0.85


def test_a_corpus_without_words_gets_the_prosody_probe_alone():
    rng = np.random.default_rng(0)
    (train, train_audio), (test, test_audio) = split(600, rng, False, True), split(300, rng, False, True)
    scores = run_probes(train.assign(text=np.nan), test.assign(text=np.nan), train_audio, test_audio)
    assert list(scores) == ["audio_macro_f1"] and scores["audio_macro_f1"] > 0.85


def test_a_store_without_a_test_split_is_one_line(tmp_path):
    import pytest

    from turnfusion.data.stores import SegmentStore
    from turnfusion.errors import DataError
    from turnfusion.evaluation.probe import probe_store

    store = SegmentStore(np.zeros((2, 16000), np.int16), pd.DataFrame({"split": ["train", "val"]}), 16000, tmp_path)
    with pytest.raises(DataError, match=r"the test split has no segment$"):
        probe_store(store)

import numpy as np
import pandas as pd
import pytest

from turnfusion.evaluation.floors import (
    FLOORS,
    RENDERING_COLUMNS,
    cross_validated_macro_f1,
    floor_classifier,
    floor_probabilities,
    frame_levels,
    rendering_features,
    speech_threshold,
)

RATE = 16000


def clip(lead_s, speech_s, tail_s, rng):
    """Noise at -60 dB around a loud tone: silence, speech, silence."""
    wave = rng.normal(0, 1e-3, int((lead_s + speech_s + tail_s) * RATE))
    i = int(lead_s * RATE)
    wave[i: i + int(speech_s * RATE)] += 0.3 * np.sin(np.arange(int(speech_s * RATE)) * 2 * np.pi * 200 / RATE)
    return wave.astype(np.float32)


def test_rendering_features_measure_speech_and_the_silences_around_it():
    rng = np.random.default_rng(0)
    levels = [frame_levels(clip(0.5, 1.0, 0.3, rng), RATE), frame_levels(clip(0.0, 0.4, 0.0, rng), RATE)]
    features = rendering_features(levels, ["so we went there", "i see"], speech_threshold(levels))
    assert list(features.columns) == RENDERING_COLUMNS
    first = features.iloc[0]
    assert first.r_seconds == pytest.approx(1.8, abs=0.02) and first.r_speech_s == pytest.approx(1.0, abs=0.04)
    assert first.r_lead_s == pytest.approx(0.5, abs=0.04) and first.r_tail_s == pytest.approx(0.3, abs=0.04)
    assert first.r_words_per_s == pytest.approx(4.0, rel=0.05)
    assert features.iloc[1].r_speech_share == pytest.approx(1.0, abs=0.06)


def corpus(silent_when_shift: bool, n_videos=20, rows=30, seed=0):
    """Utterance tables with their rendering features: either every row spoken alike, or (a leaking rendering)
    half the shift rows silent, as the old rehearsal left rows whose words were already said."""
    rng = np.random.default_rng(seed)
    records, levels = [], []
    for v in range(n_videos):
        for _ in range(rows):
            label = int(rng.integers(0, 2))
            silent = silent_when_shift and label == 1 and rng.random() < 0.5
            levels.append(frame_levels(clip(0.1, 0.0 if silent else rng.uniform(0.5, 2.0), 0.1, rng), RATE))
            records.append({"video_id": f"v{v}", "label": label, "start": 0.0, "end": rng.uniform(0.5, 3.0),
                            "context": "<s0>", "text": "one two three four five"})
    table = pd.DataFrame(records)
    return table.join(rendering_features(levels, table.text, speech_threshold(levels)))


def test_the_rendering_floor_sees_a_rendering_that_follows_the_label_and_not_one_that_does_not():
    honest = cross_validated_macro_f1(floor_classifier("rendering_only"), corpus(False))
    leaking = cross_validated_macro_f1(floor_classifier("rendering_only"), corpus(True))
    assert honest < 0.58 and leaking > 0.65


def test_a_floor_whose_inputs_a_table_lacks_is_left_out():
    table = corpus(False, n_videos=4, rows=10)
    assert set(floor_probabilities(table, table, 3)) == set(FLOORS)
    without_audio = table.drop(columns=RENDERING_COLUMNS)
    probabilities = floor_probabilities(without_audio, without_audio, 3)
    assert set(probabilities) == {"skeleton_only", "duration_only"}
    assert probabilities["duration_only"].shape == (40, 3) and np.allclose(probabilities["duration_only"].sum(1), 1)


def test_rendering_counts_no_words_for_an_empty_cell():
    levels = [np.array([-80.0, -20.0, -20.0, -80.0])] * 3
    rate = rendering_features(levels, ["one two", np.nan, None], threshold=-50.0)[RENDERING_COLUMNS[-1]]
    assert rate.iloc[0] > 0 and (rate.iloc[1:] == 0).all()  # NaN is not the word "nan"

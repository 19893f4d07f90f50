"""bench/live_lag.py: the pipecat analyzer's replay waits for the words a lagging recogniser has not yet given."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import soxr
from conftest import utterance_table

pytest.importorskip("pipecat")

from test_pipecat_turns import leaning  # noqa: E402,F401  (the fixture)

from turnfusion.data.sources import speech  # noqa: E402
from turnfusion.schema import KEEP, SHIFT  # noqa: E402
from turnfusion.serving.onnx_backend import OnnxTurnModel  # noqa: E402

spec = importlib.util.spec_from_file_location("live_lag", Path(__file__).parents[1] / "bench" / "live_lag.py")
live_lag = sys.modules["live_lag"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(live_lag)


def conversation():
    """The user (speaker 0) says two things, the agent (speaker 1) answers the second: (table, the user's channel)."""
    clips = [soxr.resample(speech.speak(text), speech.sample_rate(), live_lag.RATE).astype(np.float32)
             for text in ("so we went to the market", "what did you buy there")]
    gaps, rows, parts, t = [0.5, 1.5], [], [], 0.0
    for k, (clip, gap) in enumerate(zip(clips, gaps, strict=True)):
        parts += [np.zeros(int(gap * live_lag.RATE), np.float32), clip]
        t += gap
        voiced = np.flatnonzero(np.abs(clip) > 1e-3)
        start, end = t + voiced[0] / live_lag.RATE, t + (voiced[-1] + 1) / live_lag.RATE
        rows.append(("v", f"u{k}", ["so we went to the market", "what did you buy there"][k], [KEEP, SHIFT][k],
                     start, end, 0))
        t += len(clip) / live_lag.RATE
    rows.append(("v", "a", "some bread", KEEP, t + 0.5, t + 1.0, 1))
    parts.append(np.zeros(int(4.0 * live_lag.RATE), np.float32))
    return utterance_table(rows), np.concatenate(parts)


@pytest.mark.parametrize("lag", [0.0, 0.3])
def test_the_pipecat_replay_ends_the_turn_only_with_all_the_words(leaning, lag):  # noqa: F811
    """A model that always says shift: pipecat's turn stops after each utterance, never before its final words (at
    L = 0.3 s the analysis at the VAD's stop read interim words; the stop waits for the final, L + 0.05 s)."""
    table, wave = conversation()
    stops = live_lag.replay_pipecat(OnnxTurnModel(leaning["shift"], "fp32"), wave, table, 0, lag, timeout=3.0)
    mine = table[table.speaker == 0]
    assert [s.speech_end_s for s in stops] == pytest.approx(mine.end.tolist())
    for stop, u in zip(stops, mine.itertuples(), strict=True):
        assert stop.decided_s - u.end >= lag + live_lag.FINAL_AFTER_S - 1e-9
        assert live_lag.ends_with(stop.text, u.text)
    rows = live_lag.outcomes(table, 0, stops, 3.0)
    assert [r.turn_end_s is not None for r in rows] == [True, True]  # the keep is cut off: the model says shift
    assert not any(r.words_missing for r in rows)

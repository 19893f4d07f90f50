import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml

from turnfusion.config import from_params

REPO = Path(__file__).parents[1]


def params_config(cls, **overrides):
    """The project's default config of `cls` (from params.yaml), with `overrides`."""
    return dataclasses.replace(from_params(cls, yaml.safe_load((REPO / "params.yaml").read_text())), **overrides)


def tone(seconds: float, rate: int, freq: float = 220.0, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def rms_db(samples: np.ndarray) -> float:
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    return 20 * np.log10(rms) if rms > 0 else float("-inf")


@pytest.fixture
def recording_dir(tmp_path):
    """Two recordings: v1 stereo 44.1 kHz (4 s, a different tone per channel), v2 mono 22.05 kHz (3 s)."""
    d = tmp_path / "raw"
    d.mkdir()
    left, right = tone(4, 44100, 220), tone(4, 44100, 440, 0.1)
    sf.write(d / "v1.wav", np.stack([left, right], axis=1), 44100)
    sf.write(d / "v2.wav", tone(3, 22050, 330), 22050)
    return d


def utterance_table(rows):
    return pd.DataFrame(rows, columns=["video_id", "sentence_id", "text", "label", "start", "end", "speaker"])

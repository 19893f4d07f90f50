import contextlib
import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml

from turnfusion.config import from_params

REPO = Path(__file__).parents[1]


def run_module(cwd, *args):
    """`python -m <args>` in `cwd` with the repository importable (a stage or the CLI as DVC runs it); must succeed."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True, timeout=600,
                          env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def params_config(cls, **overrides):
    """The project's default config of `cls` (from params.yaml), with `overrides`."""
    return dataclasses.replace(from_params(cls, yaml.safe_load((REPO / "params.yaml").read_text())), **overrides)


# the head knobs and the input policy of the tests' small models, stated whole (a model config has no defaults)
TOY_KNOBS = {"text_pooling": "last", "audio_pooling": "attention", "last_k": 10, "audio_segments": 3,
             "fusion_head": "concat", "hidden_size": 128, "dropout": 0.1, "tensor_rank": 4, "modality_dropout": 0.0,
             "use_trp": False, "text_span": "all"}
TOY_PROCESSOR = {"sample_rate": 16000, "max_seconds": 3.0, "channels": "mix", "trim_vad_threshold": None,
                 "max_length": 64, "n_previous": 2, "punctuation": "strip", "trim_overlap": False}


def toy_config(mode: str, text_config: dict | None = None, audio_config: dict | None = None, **knobs):
    """A TurnFusionConfig of `mode` with TOY_KNOBS and `knobs` over them."""
    from types import SimpleNamespace

    from turnfusion.models import TurnFusionConfig

    return TurnFusionConfig.from_params(mode, SimpleNamespace(**{**TOY_KNOBS, **knobs}), text_config or {},
                                        audio_config or {})


def save_toy_processor(directory, **fields):
    """The processor config of a test model folder: TOY_PROCESSOR with `fields` over it."""
    from turnfusion.serving.processing import ProcessorConfig

    return ProcessorConfig(**{**TOY_PROCESSOR, **fields}).save_pretrained(directory)


@contextlib.contextmanager
def dies_while_validating(monkeypatch, epoch: int):
    """Inside: a training run (`train.train`) dies with KeyboardInterrupt while validating its `epoch`-th epoch,
    after saving the checkpoint of the epoch before."""
    import turnfusion.training.train as training

    real, calls = training.predict, {"n": 0}

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == epoch:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(training, "predict", interrupted)
    try:
        with pytest.raises(KeyboardInterrupt):
            yield
    finally:
        monkeypatch.setattr(training, "predict", real)


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


def save_toy_model(d, audio_config: dict | None = None):
    """A small fusion model saved in `d`: config, safetensors weights, tokenizer and processor (`audio_config` over
    the tests' audio encoder sizes)."""
    import torch
    from pipeline import AUDIO_CFG

    from turnfusion.data.tokenize import train_tokenizer
    from turnfusion.models import TurnFusionModel

    tokenizer = train_tokenizer(["hello there how are you", "i went to the market and"] * 20, 300)
    torch.manual_seed(0)
    text = {"vocab_size": len(tokenizer), "n_layer": 1, "n_embd": 16, "n_head": 2, "n_positions": 32}
    model = TurnFusionModel(toy_config("fusion", text, {**AUDIO_CFG, **(audio_config or {})}, hidden_size=16))
    for param in model.head.parameters():  # a head that reacts to its inputs
        torch.nn.init.normal_(param, std=0.2)
    model.save_pretrained(d)
    tokenizer.save_pretrained(d)
    save_toy_processor(d, max_length=24)
    return d


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    """A small saved fusion model: config, safetensors weights and tokenizer in one directory."""
    return save_toy_model(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="session")
def local_front_end_dir(tmp_path_factory):
    """The small fusion model with a layer-norm audio front end (each frame from its own samples)."""
    return save_toy_model(tmp_path_factory.mktemp("model"), {"feat_extract_norm": "layer"})

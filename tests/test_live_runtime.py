"""The live path is a slim runtime: `pip install turnfusion` brings no training stack, and the live modules load
and decide where torch, transformers, pandas, scikit-learn, scipy and dvc cannot be imported."""

import importlib.util
import subprocess
import sys

import pytest
from conftest import REPO

from turnfusion.errors import DataError
from turnfusion.live import streaming

HEAVY = {"torch", "transformers", "pandas", "sklearn", "scipy", "dvc", "accelerate", "parselmouth"}


def requirement_names(path) -> set[str]:
    lines = [line.split("#")[0].strip() for line in (REPO / path).read_text().splitlines()]
    return {line.split(">")[0].split("=")[0].split("<")[0].split(";")[0].split("[")[0].strip().lower()
            for line in lines if line}


def test_the_base_install_is_the_live_runtime_and_the_pipeline_an_extra():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    dynamic = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["dynamic"]
    assert dynamic["dependencies"]["file"] == ["requirements-live.txt"]
    assert dynamic["optional-dependencies"]["pipeline"]["file"] == ["requirements.txt"]
    live = requirement_names("requirements-live.txt")
    assert live == {"numpy", "onnxruntime", "tokenizers", "soundfile", "soxr"}
    assert {"torch", "transformers", "dvc"} <= requirement_names("requirements.txt")


BLOCKED = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in %r:
            raise ImportError(f"{name} is blocked in this test")
sys.meta_path.insert(0, Block())
sys.modules["silero_vad"] = None  # as if not installed (it pulls torch): the VAD model is pipecat's copy
import numpy as np
from turnfusion.live.streaming import SileroStream
vad = SileroStream()
print(round(float(vad(np.zeros(512, np.float32))), 3))
try:
    import turnfusion.live.pipecat_turns
except ImportError as exc:
    if "pipecat" not in str(exc):
        raise
try:
    import turnfusion.live.livekit_turns
except ImportError as exc:
    if "livekit" not in str(exc):
        raise
print(sorted(m for m in sys.modules if m.split(".")[0] in %r))
"""


@pytest.mark.skipif(importlib.util.find_spec("pipecat") is None, reason="pipecat (turnfusion[pipecat]) not installed")
def test_the_live_modules_load_and_hear_speech_without_the_training_stack():
    code = BLOCKED % (HEAVY, HEAVY)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    probability, loaded = done.stdout.strip().splitlines()[-2:]
    assert 0 <= float(probability) < 0.5 and loaded == "[]"


def test_the_vad_model_comes_from_pipecat_when_silero_vad_is_not_installed(monkeypatch):
    if importlib.util.find_spec("pipecat") is None:
        pytest.skip("pipecat not installed")
    monkeypatch.setattr(streaming, "SILERO_COPIES", (("no_such_package", "data"), ("pipecat", "audio/vad/data")))
    path = streaming.silero_model_path()
    assert path.parts[-5:] == ("pipecat", "audio", "vad", "data", "silero_vad.onnx") and path.is_file()
    monkeypatch.setattr(streaming, "SILERO_COPIES", (("no_such_package", "data"), ("no_such.plugin", "data")))
    with pytest.raises(DataError, match="no Silero VAD model: pip install 'turnfusion\\[pipecat\\]' or "
                                        "'turnfusion\\[livekit\\]'"):
        streaming.silero_model_path()

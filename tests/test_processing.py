import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import TOY_PROCESSOR, params_config, tone

from turnfusion.config import SegmentConfig, TextConfig
from turnfusion.errors import DataError
from turnfusion.serving.export import export
from turnfusion.serving.onnx_backend import OnnxTurnModel
from turnfusion.serving.predict import TurnPredictor
from turnfusion.serving.processing import PROCESSOR_FILE, ProcessorConfig, TurnFusionProcessor

LEGACY = Path(__file__).parent / "data" / "legacy_model"
sys.path.insert(0, str(LEGACY.parent))
from make_legacy_model import inputs  # noqa: E402


def test_a_model_saved_before_the_processor_had_its_file_predicts_as_it_did(tmp_path):
    """tests/data/legacy_model was saved, and expected.json computed, by the code before this refactor
    (make_legacy_model.py): its input policy inside config.json's `preprocessing`."""
    assert not (LEGACY / PROCESSOR_FILE).exists()
    assert "preprocessing" in json.loads((LEGACY / "config.json").read_text())
    predictor = TurnPredictor(LEGACY)
    assert predictor.processor.config.max_seconds == 1.5 and predictor.processor.config.trim_overlap
    expected = json.loads((LEGACY / "expected.json").read_text())
    for (text, wave, speaker, context), want in zip(inputs(), expected, strict=True):
        got = predictor.predict(text, wave, speaker=speaker, context=context, sample_rate=16000)
        assert got == pytest.approx(want, abs=1e-5)
    # saved again today: the policy moves to preprocessor_config.json and the predictions stay
    predictor.model.save_pretrained(tmp_path)
    predictor.processor.save_pretrained(tmp_path)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (tmp_path / name).write_bytes((LEGACY / name).read_bytes())
    assert "preprocessing" not in json.loads((tmp_path / "config.json").read_text())
    again = TurnPredictor(tmp_path)
    assert again.processor.config == predictor.processor.config
    text, wave, speaker, context = inputs()[2]
    assert again.predict(text, wave, speaker=speaker, context=context, sample_rate=16000) == pytest.approx(
        expected[2], abs=1e-5)


def test_the_processor_config_is_built_from_params_whole_and_round_trips(tmp_path):
    segment, text = params_config(SegmentConfig), params_config(TextConfig)
    config = ProcessorConfig.from_params(ProcessorConfig.audio_policy(segment), text, words=True)
    assert config.trim_vad_threshold is None  # segment.trim_to_speech is off in params.yaml
    trimmed = ProcessorConfig.from_params(ProcessorConfig.audio_policy(params_config(
        SegmentConfig, trim_to_speech=True, trim_vad_threshold=0.3)), text, words=True)
    assert trimmed.trim_vad_threshold == 0.3
    assert (config.n_previous, config.max_length, config.channels) == (text.n_previous, text.max_length,
                                                                      segment.channels)
    path = config.save_pretrained(tmp_path)
    assert json.loads(path.read_text())["processor_class"] == "TurnFusionProcessor"
    assert ProcessorConfig.from_pretrained(tmp_path, {}) == config
    with pytest.raises(DataError, match=r"x.json: max_length must be a whole number from 1 to the text encoder's 8"):
        ProcessorConfig.from_dict(config.to_dict(), "x.json", max_positions=8)
    with pytest.raises(DataError, match=r"preprocessor_config.json: missing"):
        ProcessorConfig.from_pretrained(tmp_path / "elsewhere", {})


def test_a_processor_says_whether_its_model_read_words_and_older_folders_did(tmp_path):
    saved = {k: v for k, v in TOY_PROCESSOR.items() if k != "words"}  # written before the field existed
    assert ProcessorConfig.from_dict(saved, "old.json").words is True
    unworded = ProcessorConfig(**{**TOY_PROCESSOR, "words": False})
    unworded.save_pretrained(tmp_path)
    assert ProcessorConfig.from_pretrained(tmp_path, {}).words is False
    with pytest.raises(DataError, match=r"x.json: words must be true or false, got 'no'"):
        ProcessorConfig.from_dict({**TOY_PROCESSOR, "words": "no"}, "x.json")


def test_a_processor_without_words_reads_the_speaker_turns_and_never_the_text():
    processor = TurnFusionProcessor(ProcessorConfig(**{**TOY_PROCESSOR, "words": False, "n_previous": 2}), False, 1)
    context = [{"text": "so we went", "speaker": 0}, {"text": "", "speaker": 1}]
    text, _ = processor.prepare("", None, 1, context)
    assert text == "<speaker0> <ts> <speaker1> <speaker1>"
    assert processor.prepare("what time is it", None, 1, [{**u, "text": None} for u in context])[0] == text
    assert processor.has_words("") and processor.has_words(None)
    worded = TurnFusionProcessor(ProcessorConfig(**TOY_PROCESSOR), False, 1)
    with pytest.raises(DataError, match="current utterance: empty text"):
        worded.prepare("", None, 1)


def test_left_truncation_keeps_the_end_of_each_context(model_dir):
    processor = TurnPredictor(model_dir).processor
    processor = TurnFusionProcessor(ProcessorConfig(**{**TOY_PROCESSOR, "max_length": 4}), True, 1,
                                    processor.tokenizer)
    long = "hello there how are you i went to the market and"
    full = processor.tokenizer.encode(long, add_special_tokens=False).ids
    ids, mask = processor.text_batch([long, "hello"])
    assert len(full) > 4 and ids[0].tolist() == full[-4:]
    assert mask.tolist()[1] == [1] * len(processor.tokenizer.encode("hello", add_special_tokens=False).ids) + [0] * (
        4 - len(processor.tokenizer.encode("hello", add_special_tokens=False).ids))


BLOCKED = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"torch", "pandas", "transformers", "sklearn"}:
            raise ImportError(f"{name} is blocked in this test")
sys.meta_path.insert(0, Block())
import json, numpy as np
from turnfusion.serving.onnx_backend import TurnSession
session = TurnSession(sys.argv[1], precision="fp32")
wave = np.load(sys.argv[2])
out = [session.add("so i went to the market", wave, speaker=0, sample_rate=16000),
       session.add("oh nice", wave[:8000], speaker=1, sample_rate=16000)]
assert not any(m.split(".")[0] in {"torch", "pandas", "transformers"} for m in sys.modules)
print(json.dumps(out))
"""


def test_the_onnx_backend_predicts_where_torch_and_pandas_cannot_be_imported(model_dir, tmp_path):
    exported = tmp_path / "onnx"
    export(model_dir, exported)
    wave = tone(1.2, 16000, 180)
    np.save(tmp_path / "wave.npy", wave)
    run = subprocess.run([sys.executable, "-c", BLOCKED, str(exported), str(tmp_path / "wave.npy")],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    got = json.loads(run.stdout.strip().splitlines()[-1])
    model = OnnxTurnModel(exported, "fp32")
    first = model.predict("so i went to the market", wave, speaker=0, sample_rate=16000)
    assert got[0] == pytest.approx(first, abs=1e-6)
    assert got[1] != got[0]


def test_exports_of_old_and_new_model_folders_carry_the_processor_and_old_exports_still_load(tmp_path):
    from turnfusion.serving.onnx_backend import MANIFEST, file_sha256

    export(LEGACY, tmp_path / "onnx")  # a folder saved before the processor had its file
    saved = json.loads((tmp_path / "onnx" / PROCESSOR_FILE).read_text())
    assert saved["max_seconds"] == 1.5 and json.loads((tmp_path / "onnx" / MANIFEST).read_text())["format"] == 3
    text, wave, speaker, context = inputs()[1]
    want = OnnxTurnModel(tmp_path / "onnx", "fp32").predict(text, wave, speaker=speaker, context=context,
                                                          sample_rate=16000)
    assert want == pytest.approx(json.loads((LEGACY / "expected.json").read_text())[1], abs=1e-4)
    # the same export as format 2 wrote it: the policy inside config.json, no processor file
    old = tmp_path / "onnx"
    config = json.loads((old / "config.json").read_text())
    (old / "config.json").write_text(json.dumps({**config, "preprocessing": saved | {"processor_class": None}}))
    (old / PROCESSOR_FILE).unlink()
    manifest = json.loads((old / MANIFEST).read_text())
    manifest["format"] = 2
    del manifest["files"][PROCESSOR_FILE]
    manifest["files"]["config.json"]["sha256"] = file_sha256(old / "config.json")
    (old / MANIFEST).write_text(json.dumps(manifest))
    got = OnnxTurnModel(old, "fp32").predict(text, wave, speaker=speaker, context=context, sample_rate=16000)
    assert got == pytest.approx(want, abs=1e-6)

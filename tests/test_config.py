import re

import pytest
import yaml
from conftest import REPO

from turnfusion.choices import MODEL_BOUNDS, PROCESSOR_BOUNDS
from turnfusion.config import (
    CallsConfig,
    ComputeConfig,
    DataConfig,
    DemoConfig,
    DownloadConfig,
    DropSilentConfig,
    EmbedConfig,
    ExportConfig,
    LabelConfig,
    Mmf2fConfig,
    ModelConfig,
    OnsetGateConfig,
    ParamsError,
    PretrainAudioConfig,
    SegmentConfig,
    SplitConfig,
    TeacherConfig,
    TextConfig,
    TrainConfig,
    from_params,
    validate_params,
)
from turnfusion.errors import DataError

ALL = [DataConfig, DemoConfig, Mmf2fConfig, CallsConfig, LabelConfig, DownloadConfig, DropSilentConfig, SegmentConfig,
       SplitConfig, TextConfig, TeacherConfig, PretrainAudioConfig, ModelConfig, EmbedConfig, TrainConfig, ExportConfig,
       OnsetGateConfig, ComputeConfig]


def shipped() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


def test_every_params_section_has_one_config_class_that_builds_from_the_shipped_params():
    params = shipped()
    assert sorted(c.section for c in ALL) == sorted(params)
    for cls in ALL:
        assert from_params(cls, params).section == cls.section


def test_missing_and_unknown_keys_are_named():
    params = shipped()
    del params["train"]["epochs"]
    params["train"]["epoch"] = 3
    with pytest.raises(ParamsError, match=r"train\.epochs missing, train\.epoch unknown"):
        from_params(TrainConfig, params)
    with pytest.raises(ParamsError, match="section 'teacher' missing"):
        from_params(TeacherConfig, {})


@pytest.mark.parametrize("cls,key,value", [
    (ModelConfig, "audio_pooling", "median"), (ModelConfig, "fusion_head", "sum"), (ModelConfig, "text_pooling", "x"),
    (TrainConfig, "encoders", "partial"), (TrainConfig, "loss", "mse"), (TrainConfig, "criterion", "accuracy"),
    (TrainConfig, "sampler", "random"), (SegmentConfig, "channels", "left"), (TextConfig, "punctuation", "drop"),
    (DataConfig, "source", "youtube")])
def test_names_outside_the_allowed_set_fail_at_load_naming_the_param(cls, key, value):
    params = shipped()
    params[cls.section][key] = value
    with pytest.raises(ParamsError, match=rf"params.yaml: {cls.section}\.{key} must be one of .* got '{value}'"):
        from_params(cls, params)


@pytest.mark.parametrize("cls,key,value,message", [
    (SegmentConfig, "max_seconds", -1, "segment.max_seconds must be a number from 0.05 to 3600, got -1"),
    (SegmentConfig, "max_seconds", 0, "segment.max_seconds must be a number from 0.05 to 3600, got 0"),
    (SegmentConfig, "max_seconds", "3", "segment.max_seconds must be float, got '3'"),
    (TextConfig, "max_length", 0, "text.max_length must be a whole number from 1 to 65536, got 0"),
    (TextConfig, "max_length", -5, "text.max_length must be a whole number from 1 to 65536, got -5"),
    (TextConfig, "n_previous", -1, "text.n_previous must be a whole number from 0 to 64, got -1"),
    (TextConfig, "n_previous", 65, "text.n_previous must be a whole number from 0 to 64, got 65"),
    (ModelConfig, "audio_segments", 66, "model.audio_segments must be a whole number from 1 to 65, got 66"),
    (DownloadConfig, "retries", "many", "download.retries must be int, got 'many'"),
    (DownloadConfig, "timeout_s", -3, "download.timeout_s must be > 0, got -3"),
    (SplitConfig, "val_fraction", 0.9, r"split.val_fraction \+ split.test_fraction must be < 1"),
    (TeacherConfig, "crossfit_folds", 1, "teacher.crossfit_folds must be auto, 0 .* or >= 2, got 1"),
    (TeacherConfig, "crossfit_folds", "two", "teacher.crossfit_folds must be auto, 0 .* or >= 2, got 'two'"),
    (TeacherConfig, "dropout", 1.0, r"teacher.dropout must be a number from 0 to below 1, got 1.0"),
    (TeacherConfig, "dropout", -0.1, r"teacher.dropout must be a number from 0 to below 1, got -0.1"),
    (TeacherConfig, "attention_dropout", 1, r"teacher.attention_dropout must be a number from 0 to below 1, got 1"),
    (TrainConfig, "epochs", True, "train.epochs must be int, got True"),
    (TrainConfig, "focal_alpha", [1, 2], "train.focal_alpha must be null or 3 positive numbers"),
    (TrainConfig, "device", "gpu", "train.device must be auto, cpu, cuda, cuda:N or mps, got 'gpu'"),
    (ModelConfig, "dropout", 1.0, r"model.dropout must be a number from 0 to below 1, got 1.0")])
def test_types_and_ranges_are_checked_naming_the_param(cls, key, value, message):
    params = shipped()
    params[cls.section][key] = value
    with pytest.raises(ParamsError, match=message):
        validate_params(params)


def test_a_bad_param_of_a_late_stage_stops_the_first_stage_before_it_does_work(tmp_path):
    import os
    import subprocess
    import sys

    params = shipped()
    params["model"]["audio_pooling"] = "median"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    done = subprocess.run([sys.executable, "-m", "stages.source", "--out", "data/source"], cwd=tmp_path,
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == ("error: params.yaml: model.audio_pooling must be one of "
                                                    "['mean', 'max', 'attention', 'stats', 'last_k'], got 'median'")
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("key,value,message", [
    ("precision", "fp16", r"compute.precision must be one of \['bf16', 'fp32'\], got 'fp16'"),
    ("launcher", " ", r"compute.launcher must name a command"),
])
def test_bad_compute_params_are_named(key, value, message):
    params = shipped()
    params["compute"][key] = value
    with pytest.raises(ParamsError, match=message):
        validate_params(params)


def outside(bound):
    """A value just past the upper end of `bound`."""
    return bound.high if bound.below_high else bound.high + (1 if bound.whole else 0.5)


@pytest.mark.parametrize("field", [*PROCESSOR_BOUNDS, *MODEL_BOUNDS])
def test_params_and_saved_model_folders_share_one_bound_per_field(field):
    """One table (choices.PROCESSOR_BOUNDS, MODEL_BOUNDS) for the params check and the model folder checks: a params
    file that trains a model its own loader would refuse is refused first, with the loader's rule. Before, three
    validators disagreed (model.modality_dropout: 1.0 trained, then the folder was refused)."""
    import json

    from turnfusion.serving.predictor import check_model_config
    from turnfusion.serving.processing import ProcessorConfig

    section = "model" if field in MODEL_BOUNDS else "text" if field in ("max_length", "n_previous") else "segment"
    bound = {**PROCESSOR_BOUNDS, **MODEL_BOUNDS}[field]
    value = outside(bound)
    params = shipped()
    params[section][field] = value
    with pytest.raises(ParamsError, match=rf"params.yaml: {section}\.{field} must be {re.escape(bound.rule())}"):
        validate_params(params)
    legacy = REPO / "tests" / "data" / "legacy_model"
    config = json.loads((legacy / "config.json").read_text())
    if section == "model":
        with pytest.raises(DataError, match=rf"config.json: {field} must be {re.escape(bound.rule())}"):
            check_model_config({**config, field: value}, "config.json")
    else:
        saved = {**config["preprocessing"], field: value}
        with pytest.raises(DataError, match=rf"preprocessor_config.json: {field} must be .*{re.escape(bound.rule())}"):
            ProcessorConfig.from_dict(saved, "preprocessor_config.json")


@pytest.mark.parametrize(("section", "key", "value"), [("model", "modality_dropout", 1.0),
                                                       ("segment", "max_seconds", 0.02)])
def test_the_settings_refused_after_training_are_refused_before_it(section, key, value):
    params = shipped()
    params[section][key] = value
    with pytest.raises(ParamsError, match=rf"{section}\.{key} must be"):
        validate_params(params)


DOC_RECIPES = [(doc.name, k, block) for doc in sorted((REPO / "docs").glob("*.md"))
               for k, block in enumerate(re.findall(r"```yaml\n(.*?)```", doc.read_text(), re.S))]


@pytest.mark.parametrize("doc, k, block", DOC_RECIPES, ids=[f"{d}-{k}" for d, k, _ in DOC_RECIPES])
def test_every_params_recipe_in_the_docs_is_one_the_check_accepts(doc, k, block):
    """A recipe (docs/real_data.md: MM-F2F, the seed's encoders, the pair input) laid over the shipped params passes
    the params check: a renamed param or a value the check refuses fails here before a reader runs it."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for section, values in yaml.safe_load(block).items():
        assert section in params and isinstance(values, dict), f"{doc} block {k}: section {section!r}"
        params[section].update(values)
    validate_params(params)


def test_the_docs_hold_the_recipes_this_test_checks():
    assert {doc for doc, _, _ in DOC_RECIPES} == {"real_data.md"} and len(DOC_RECIPES) >= 3


def test_a_window_hop_over_half_the_kept_audio_is_refused_in_params_and_in_a_saved_folder():
    from conftest import TOY_PROCESSOR

    from turnfusion.config import ParamsError, SegmentConfig
    from turnfusion.serving.processing import ProcessorConfig

    SegmentConfig(16000, 1.0, "mix", False, 0.5, "keep", 8000)  # half of the kept 16,000 samples: allowed
    with pytest.raises(ParamsError, match=r"segment.window_hop must be at most half of max_seconds x sample_rate "
                                          r"\(8000 samples\), got 8001"):
        SegmentConfig(16000, 1.0, "mix", False, 0.5, "keep", 8001)
    with pytest.raises(DataError, match=r"p.json: window_hop must be at most half of max_seconds x sample_rate "
                                        r"\(16000 samples\), got 65536"):
        ProcessorConfig.from_dict({**TOY_PROCESSOR, "max_seconds": 2.0, "window_hop": 65536}, "p.json")

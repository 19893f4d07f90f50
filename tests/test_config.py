import pytest
import yaml
from conftest import REPO

from turnfusion.config import (
    DataConfig,
    DemoConfig,
    DownloadConfig,
    DropSilentConfig,
    Mmf2fConfig,
    ModelConfig,
    ParamsError,
    PretrainAudioConfig,
    SegmentConfig,
    SplitConfig,
    TeacherConfig,
    TextConfig,
    TrainConfig,
    from_params,
)

ALL = [DataConfig, DemoConfig, Mmf2fConfig, DownloadConfig, DropSilentConfig, SegmentConfig, SplitConfig, TextConfig,
       TeacherConfig, PretrainAudioConfig, ModelConfig, TrainConfig]


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

"""The text and audio encoders, built by hub name / local path or from config sizes."""

from __future__ import annotations

from pathlib import Path

from transformers import GPT2Config, GPT2Model, HubertConfig, HubertModel

from turnfusion.config import ModelConfig, ParamsError
from turnfusion.schema import DataError


def check_sizes(cfg: ModelConfig, *names: str) -> None:
    """`model.text_config` / `model.audio_config` (`names`) hold only fields of GPT2Config / HubertConfig: Hugging
    Face configs take unknown keys silently, and a typo would train a model of other sizes. Called by the stages
    that build encoders, before they read their inputs (config.py itself stays free of transformers)."""
    classes = {"text_config": GPT2Config, "audio_config": HubertConfig}
    for name in names:
        unknown = sorted(set(getattr(cfg, name)) - set(classes[name]().to_dict()))
        if unknown:
            raise ParamsError(f"params.yaml: model.{name}.{unknown[0]} is not a field of {classes[name].__name__} "
                              f"({len(unknown)} unknown)")


def build_text_encoder(source: str, tokenizer, config: dict, teacher_dir: Path, n_positions: int) -> GPT2Model:
    """GPT2Model from the trained teacher (`teacher`), from config sizes (`config`), or a hub name / local path."""
    if source == "teacher":
        if not Path(teacher_dir).exists():
            raise DataError(f"text encoder 'teacher' asked for, but {teacher_dir} does not exist "
                            "(run the teacher stage)")
        return GPT2Model.from_pretrained(str(teacher_dir))
    if source == "config":
        return GPT2Model(GPT2Config(vocab_size=len(tokenizer), n_positions=n_positions, **config))
    model = GPT2Model.from_pretrained(source)
    model.resize_token_embeddings(len(tokenizer))
    return model


def build_audio_encoder(source: str, config: dict, pretrained_dir: Path | None = None) -> HubertModel:
    """HubertModel from the pretrain_audio stage (`pretrain_audio`, read from `pretrained_dir`), from config sizes
    (`config`), or a hub name / local path (e.g. ntu-spml/distilhubert)."""
    if source == "config":
        return HubertModel(HubertConfig(**config))
    if source == "pretrain_audio":
        if pretrained_dir is None or not Path(pretrained_dir).exists():
            raise DataError(f"audio encoder 'pretrain_audio' asked for, but {pretrained_dir} does not exist "
                            "(run the pretrain_audio stage)")
        source = str(pretrained_dir)
    return HubertModel.from_pretrained(source)

"""The text and audio encoders, built by hub name / local path or from config sizes."""

from __future__ import annotations

from pathlib import Path

from transformers import AutoConfig, GPT2Config, GPT2Model, HubertConfig, HubertModel, PreTrainedModel

from turnfusion.choices import text_input_problem
from turnfusion.config import ModelConfig, ParamsError
from turnfusion.data.stores import ENCODERS_DIR
from turnfusion.errors import DataError
from turnfusion.models.turnfusion_model import TEXT_ENCODERS
from turnfusion.text.words import pair_separator_id
from turnfusion.training.loop import GPT2_ACTIVATION


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


def build_text_encoder(source: str, tokenizer, config: dict, teacher_dir: Path, n_positions: int,
                       input_form: str = "context") -> PreTrainedModel:
    """The text encoder: the trained teacher's transformer (`teacher`), a GPT-2 from config sizes (`config`), or
    a GPT-2 or BERT-type model by hub name / local path (e.g. all-MiniLM-L6-v2's folder), its token embeddings
    resized to the tokenizer (which adds the speaker and turn-shift tokens). For `input_form` pair it must be a
    BERT-type model, and its config learns the tokenizer's segment separator (`sep_token_id`): the segment ids
    and the pooled span are computed from it (`models.encoding.text_hidden`, `models.pooling.span_mask`)."""
    model = _text_encoder(source, tokenizer, config, teacher_dir, n_positions)
    if input_form == "pair":
        if model.config.model_type != "bert":
            raise DataError(f"params.yaml: text.input_form: pair needs a BERT-type text encoder; model.text_encoder "
                            f"{source!r} is a {model.config.model_type!r} model")
        model.config.sep_token_id = pair_separator_id(tokenizer)
        problem = text_input_problem("pair", "all", model.config.to_dict())
        if problem:
            raise DataError(f"params.yaml: text.input_form: pair with model.text_encoder {source!r}: {problem}")
    return model


def _text_encoder(source: str, tokenizer, config: dict, teacher_dir: Path, n_positions: int) -> PreTrainedModel:
    if source == "teacher":
        if not Path(teacher_dir).exists():
            raise DataError(f"text encoder 'teacher' asked for, but {teacher_dir} does not exist "
                            "(run the teacher stage)")
        return GPT2Model.from_pretrained(str(teacher_dir))
    if source == "config":
        return GPT2Model(GPT2Config(vocab_size=len(tokenizer), n_positions=n_positions,
                                    **{"activation_function": GPT2_ACTIVATION, **config}))
    model = pretrained_text_encoder(source)
    model.resize_token_embeddings(len(tokenizer))
    return model


def pretrained_text_encoder(source: str) -> PreTrainedModel:
    """A saved text encoder (hub name or local path) of a kind a TurnFusionModel can hold (`TEXT_ENCODERS`)."""
    kind = AutoConfig.from_pretrained(source).model_type
    if kind not in TEXT_ENCODERS:
        raise DataError(f"text encoder {source}: a {kind!r} model; turnfusion takes {sorted(TEXT_ENCODERS)}")
    return TEXT_ENCODERS[kind][1].from_pretrained(source)


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


def load_encoders(cache_dir: Path) -> tuple[PreTrainedModel, HubertModel]:
    """(text encoder, audio encoder) the embedding cache in `cache_dir` was made with: what training and evaluation
    read beside the cache, without importing the embed stage's code."""
    encoders = Path(cache_dir) / ENCODERS_DIR
    return pretrained_text_encoder(str(encoders / "text")), HubertModel.from_pretrained(str(encoders / "audio"))

"""One dataclass per section of `params.yaml`: the stages build them and pass them whole.

`params.yaml` is the one place where defaults live, so no field has a default here. `from_params`
checks that a section has exactly the fields of its class and names the param when it does not;
`__post_init__` checks the values whose allowed set is known here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

from turnfusion.schema import DataError


class ParamsError(DataError):
    """A param that cannot be used; the message names it (`section.key`)."""


def _one_of(section: str, name: str, value, allowed) -> None:
    if value not in allowed:
        raise ParamsError(f"params.yaml: {section}.{name} must be one of {list(allowed)}, got {value!r}")


@dataclass(frozen=True)
class DataConfig:
    section: ClassVar[str] = "data"
    source: str  # demo (embedded, offline) or mmf2f (annotation CSVs + YouTube recordings)
    seed: int  # seed of the demo corpus generator

    def __post_init__(self):
        _one_of(self.section, "source", self.source, ("demo", "mmf2f"))


@dataclass(frozen=True)
class DemoConfig:
    section: ClassVar[str] = "demo"
    n_conversations: int  # the last n_silent + n_corrupt + n_empty are deliberately broken recordings
    utterances_per_conversation: int
    sample_rate: int  # of the written recordings
    stereo_fraction: float  # share of recordings with one speaker per channel; the rest are mono mixes
    snr_db: float  # white noise relative to the speech level
    n_silent: int
    n_corrupt: int
    n_empty: int


@dataclass(frozen=True)
class Mmf2fConfig:
    section: ClassVar[str] = "mmf2f"
    annotations: dict  # split name -> MM-F2F CSV


@dataclass(frozen=True)
class DownloadConfig:
    section: ClassVar[str] = "download"
    retries: int
    timeout_s: float


@dataclass(frozen=True)
class DropSilentConfig:
    section: ClassVar[str] = "drop_silent"
    min_seconds: float  # shorter recordings are dropped
    vad_threshold_db: float  # a frame is active above this level (dBFS)
    min_active_fraction: float  # recordings with fewer active frames are dropped as silent


@dataclass(frozen=True)
class SegmentConfig:
    section: ClassVar[str] = "segment"
    sample_rate: int  # of the segment store (the audio encoder's rate)
    max_seconds: float  # longer utterances keep their last max_seconds
    channels: str  # mix (average channels) or speaker (the speaker's own channel of stereo recordings)

    def __post_init__(self):
        _one_of(self.section, "channels", self.channels, ("mix", "speaker"))


@dataclass(frozen=True)
class SplitConfig:
    section: ClassVar[str] = "split"
    val_fraction: float
    test_fraction: float
    seed: int


@dataclass(frozen=True)
class TextConfig:
    section: ClassVar[str] = "text"
    tokenizer: str  # "train" (byte-level BPE fitted on the training split) or a hub name / local path
    vocab_size: int  # of a trained tokenizer
    max_length: int  # tokens per context; longer contexts keep their end
    n_previous: int  # previous utterances in the context
    punctuation: str  # strip or keep

    def __post_init__(self):
        _one_of(self.section, "punctuation", self.punctuation, ("strip", "keep"))


@dataclass(frozen=True)
class TeacherConfig:
    section: ClassVar[str] = "teacher"
    base: str | None  # hub name / local path of a GPT-2 LM to fine-tune; None: a small GPT-2 from the sizes below
    n_layer: int
    n_embd: int
    n_head: int
    epochs: int
    batch_size: int
    lr: float
    seed: int
    device: str  # auto: CUDA when present, else CPU
    crossfit_folds: int  # >= 2: the train split's TRP comes from teachers that did not train on it; 0: in-sample


@dataclass(frozen=True)
class PretrainAudioConfig:
    section: ClassVar[str] = "pretrain_audio"
    epochs: int
    batch_size: int
    lr: float
    crop_s: float  # last seconds of each training segment (the end carries the cues)
    seed: int
    device: str


@dataclass(frozen=True)
class ModelConfig:
    section: ClassVar[str] = "model"
    seed: int  # initial weights of encoders built from config
    text_encoder: str  # teacher (the teacher LM's transformer), config, or a hub name / local path
    text_config: dict  # GPT-2 sizes for text_encoder: config
    audio_encoder: str  # pretrain_audio (the prosody-pretrained encoder), config, or a hub name / local path
    audio_config: dict  # HuBERT sizes for audio_encoder: config (and for pretrain_audio)
    text_pooling: str
    audio_pooling: str
    last_k: int  # frames for audio_pooling: last_k
    audio_segments: int  # current utterance + its predecessors
    fusion_head: str
    hidden_size: int
    dropout: float
    tensor_rank: int
    modality_dropout: float
    use_trp: bool  # feed the teacher's TRP to the head

    def __post_init__(self):
        # imported here, not at the top: the stages that never build a model should not pay torch's import
        from turnfusion.models import AUDIO_POOLINGS, FUSION_HEADS, TEXT_POOLINGS

        _one_of(self.section, "text_pooling", self.text_pooling, TEXT_POOLINGS)
        _one_of(self.section, "audio_pooling", self.audio_pooling, AUDIO_POOLINGS)
        _one_of(self.section, "fusion_head", self.fusion_head, FUSION_HEADS)


@dataclass(frozen=True)
class TrainConfig:
    section: ClassVar[str] = "train"
    epochs: int
    batch_size: int
    lr_head: float
    lr_encoder: float
    weight_decay: float
    warmup_steps: int
    loss: str  # focal or ce
    focal_gamma: float
    focal_alpha: list | None  # per class; None: uniform with the weighted sampler, inverse frequency otherwise
    distill_weight: float  # weight of the BCE term towards the teacher's TRP
    sampler: str  # weighted (class-balanced) or shuffle
    encoders: str  # frozen (cached embeddings), gradual (unfrozen at unfreeze_epoch) or full
    unfreeze_epoch: int
    criterion: str  # macro_f1 or min_class_f1 (early stopping and best checkpoint)
    patience: int
    seed: int
    device: str

    def __post_init__(self):
        _one_of(self.section, "loss", self.loss, ("focal", "ce"))
        _one_of(self.section, "sampler", self.sampler, ("weighted", "shuffle"))
        _one_of(self.section, "encoders", self.encoders, ("frozen", "gradual", "full"))
        _one_of(self.section, "criterion", self.criterion, ("macro_f1", "min_class_f1"))


def from_params(cls, params: dict):
    """Build `cls` from the whole params dict (its section `cls.section`), naming any missing or unknown key."""
    section = params.get(cls.section)
    if not isinstance(section, dict):
        raise ParamsError(f"params.yaml: section {cls.section!r} missing or not a mapping")
    names = [f.name for f in dataclasses.fields(cls)]
    missing = [n for n in names if n not in section]
    unknown = [k for k in section if k not in names]
    if missing or unknown:
        problems = [f"{cls.section}.{n} missing" for n in missing] + [f"{cls.section}.{k} unknown" for k in unknown]
        raise ParamsError(f"params.yaml: {', '.join(problems)}")
    return cls(**section)

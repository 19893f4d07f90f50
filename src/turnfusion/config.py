"""One dataclass per section of `params.yaml`: the stages build them and pass them whole.

`params.yaml` is the one place where defaults live, so no field has a default here, nor in the configs built
from these (`models.TurnFusionConfig.from_params`, `processing.ProcessorConfig.from_params`). `from_params`
checks that a section has exactly the fields of its class, each of its annotated type, and each class's
`__post_init__` checks ranges and allowed names; every message names the param (`section.key`).
`validate_params` checks the whole file, so a bad value fails before any stage does work.
"""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from dataclasses import dataclass
from typing import ClassVar

from turnfusion.choices import (
    AUDIO_POOLINGS,
    ENCODER_SCHEDULES,
    ENCODER_SIZES,
    FUSION_HEADS,
    INPUT_FORMS,
    MODEL_BOUNDS,
    POOL,
    PROCESSOR_BOUNDS,
    SPLITS,
    TEXT_POOLINGS,
    TEXT_SPANS,
    Bound,
    encoder_size_problem,
    window_hop_problem,
)
from turnfusion.errors import DataError


class ParamsError(DataError):
    """A param that cannot be used; the message names it (`section.key`)."""


def _one_of(section: str, name: str, value, allowed) -> None:
    if value not in allowed:
        raise ParamsError(f"params.yaml: {section}.{name} must be one of {list(allowed)}, got {value!r}")


def _at_least(section: str, name: str, value, low, strictly: bool = False) -> None:
    if value < low or (strictly and value == low):
        raise ParamsError(f"params.yaml: {section}.{name} must be {'>' if strictly else '>='} {low}, got {value!r}")


def _at_most(section: str, name: str, value, high) -> None:
    if value > high:
        raise ParamsError(f"params.yaml: {section}.{name} must be <= {high}, got {value!r}")


def _bounded(section: str, name: str, value, bound: Bound) -> None:
    """The bound a saved model or processor config has for the same field (`choices`): one rule, checked here first."""
    if not bound.holds(value):
        raise ParamsError(f"params.yaml: {section}.{name} must be {bound.rule()}, got {value!r}")


def _fraction(section: str, name: str, value, open_interval: bool = False) -> None:
    if not (0 < value < 1 if open_interval else 0 <= value <= 1):
        interval = "strictly between 0 and 1" if open_interval else "between 0 and 1"
        raise ParamsError(f"params.yaml: {section}.{name} must be {interval}, got {value!r}")


def _device(section: str, value: str) -> None:
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", value):
        raise ParamsError(f"params.yaml: {section}.device must be auto, cpu, cuda, cuda:N or mps, got {value!r}")


@dataclass(frozen=True)
class DataConfig:
    section: ClassVar[str] = "data"
    source: str  # demo (embedded, offline), mmf2f (annotation CSVs + YouTube recordings) or calls (your recordings)
    seed: int  # seed of the demo corpus generator and of the rehearsal's voices

    def __post_init__(self):
        _one_of(self.section, "source", self.source, ("demo", "mmf2f", "calls"))


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
    language: str  # en or de: the words, voices and backchannels of the conversations
    transcripts: str  # none, or a timed transcript per recording as the recognisers write it: json (Whisper) or csv
    turn_openers: float  # share of turns whose first utterance opens with a backchannel word ("yeah i went ..."), as
    # real turns often do; 0: none, the corpus as it was before the param (the same bytes)

    def __post_init__(self):
        _one_of(self.section, "language", self.language, ("en", "de"))
        _one_of(self.section, "transcripts", self.transcripts, ("none", "json", "csv"))
        for name in ("n_conversations", "utterances_per_conversation", "sample_rate"):
            _at_least(self.section, name, getattr(self, name), 1)
        for name in ("n_silent", "n_corrupt", "n_empty"):
            _at_least(self.section, name, getattr(self, name), 0)
        _fraction(self.section, "stereo_fraction", self.stereo_fraction)
        _fraction(self.section, "turn_openers", self.turn_openers)


@dataclass(frozen=True)
class Mmf2fConfig:
    section: ClassVar[str] = "mmf2f"
    annotations: dict  # train / val / test / pool -> MM-F2F CSV; `pool` rows are split by video (`split` params)
    # where each video's recording comes from, fetched by the download stage (yt-dlp + ffmpeg):
    # youtube; a URL or path template with {video_id} (file:///videos/{video_id}.m4a, https://host/{video_id}.mp4);
    # a directory holding {video_id}.* files; or rehearsal (the table spoken by eSpeak NG, no real cues)
    recordings: str

    def __post_init__(self):
        if not self.annotations:
            raise ParamsError("params.yaml: mmf2f.annotations is empty; give {split: csv} with split in "
                              f"{[*SPLITS, POOL]}")
        for split, path in self.annotations.items():
            _one_of(self.section, "annotations key", split, (*SPLITS, POOL))
            if not isinstance(path, str) or not path:
                raise ParamsError(f"params.yaml: mmf2f.annotations.{split} must be a CSV path, got {path!r}")
        if not self.recordings.strip():
            raise ParamsError("params.yaml: mmf2f.recordings is empty; use youtube, rehearsal, a template with "
                              "{video_id} or a directory")


@dataclass(frozen=True)
class CallsConfig:
    section: ClassVar[str] = "calls"
    # <name>.wav / .flac / .mp3 / .ogg / .opus / .m4a (stereo: one speaker per channel; mono: with <name>.rttm),
    # optionally with <name>.json (Whisper-style) or <name>.csv (speaker, start, end, word or text)
    folder: str
    speakers: list  # the names of channel 0's and channel 1's speaker in transcripts and RTTM files

    def __post_init__(self):
        if not self.folder.strip():
            raise ParamsError("params.yaml: calls.folder is empty; give the folder of your recordings")
        if len(self.speakers) != 2 or len({str(s) for s in self.speakers}) != 2:
            raise ParamsError(f"params.yaml: calls.speakers must name 2 different speakers (channel 0, channel 1), "
                              f"got {self.speakers!r:.80}")


@dataclass(frozen=True)
class LabelConfig:
    section: ClassVar[str] = "label"
    labels: str  # auto: the source's labels when it has them (demo, mmf2f), derived otherwise (calls); given; derived
    vad_threshold: float  # Silero VAD speech probability threshold (each channel)
    min_pause_s: float  # a shorter silence within a speaker's speech does not end an inter-pausal unit (IPU)
    min_speech_s: float  # shorter activity is dropped (a click, a breath)
    min_utterance_s: float  # shorter utterances are counted and skipped
    max_gap_s: float  # nobody speaks for longer after an utterance: counted and skipped (no_response)
    min_overlap_s: float  # shorter overlaps are none (the VAD's padding and blur): a shift, not a barge-in
    bc_max_s: float  # a backchannel is listener activity at most this long (VAP: bc_max_duration 1.0 s) ...
    bc_pre_silence_s: float  # ... with the listener silent this long before it (VAP: bc_pre_cond_time 1.0 s) ...
    bc_post_silence_s: float  # ... and after it (VAP: bc_post_cond_time 1.0 s) ...
    bc_window_s: float  # ... starting at most this long before the speaker's end (VAP's 0.5 s prediction region)
    backchannel_words: str  # en, de: a unit with words is a backchannel only when made of these; none: activity alone
    match_tolerance_s: float  # agreement with given labels: a derived utterance of the same speaker ends this close

    def __post_init__(self):
        _one_of(self.section, "labels", self.labels, ("auto", "given", "derived"))
        _one_of(self.section, "backchannel_words", self.backchannel_words, ("en", "de", "none"))
        _fraction(self.section, "vad_threshold", self.vad_threshold, open_interval=True)
        for name in ("min_pause_s", "min_speech_s", "min_utterance_s", "min_overlap_s", "bc_pre_silence_s",
                     "bc_post_silence_s", "bc_window_s"):
            _at_least(self.section, name, getattr(self, name), 0)
        for name in ("max_gap_s", "bc_max_s", "match_tolerance_s"):
            _at_least(self.section, name, getattr(self, name), 0, strictly=True)


@dataclass(frozen=True)
class DownloadConfig:
    section: ClassVar[str] = "download"
    retries: int
    timeout_s: float
    sample_rate: int  # recordings are stored as FLAC at this rate (the segment stage resamples to its own)
    mono: bool  # false: channels kept (a stereo recording may hold one speaker per channel)
    workers: int = 4  # recordings fetched and converted at once (the network waits, ffmpeg uses a core each)

    def __post_init__(self):
        _at_least(self.section, "sample_rate", self.sample_rate, 8000)
        _at_least(self.section, "workers", self.workers, 1)
        _at_least(self.section, "retries", self.retries, 0)
        _at_least(self.section, "timeout_s", self.timeout_s, 0, strictly=True)


@dataclass(frozen=True)
class DropSilentConfig:
    section: ClassVar[str] = "drop_silent"
    min_seconds: float  # shorter recordings are dropped
    energy_threshold_db: float  # cheap first pass: a frame is active above this level (dBFS)
    min_active_fraction: float  # recordings with fewer active frames are dropped as silent (no VAD run)
    vad_threshold: float  # Silero VAD speech probability threshold
    min_speech_seconds: float  # recordings with less speech are dropped as no_speech ...
    min_speech_fraction: float  # ... and so are those where speech is a smaller share of the recording

    def __post_init__(self):
        _at_least(self.section, "min_seconds", self.min_seconds, 0)
        _at_least(self.section, "min_speech_seconds", self.min_speech_seconds, 0)
        _fraction(self.section, "min_active_fraction", self.min_active_fraction)
        _fraction(self.section, "vad_threshold", self.vad_threshold, open_interval=True)
        _fraction(self.section, "min_speech_fraction", self.min_speech_fraction)


@dataclass(frozen=True)
class SegmentConfig:
    section: ClassVar[str] = "segment"
    sample_rate: int  # of the segment store (the audio encoder's rate)
    max_seconds: float  # longer utterances keep their last max_seconds
    channels: str  # mix (average channels) or speaker (the speaker's own channel of stereo recordings)
    trim_to_speech: bool  # cut each segment's trailing non-speech (by Silero VAD); real timestamps are loose
    trim_vad_threshold: float  # the VAD's speech probability threshold for trimming
    conflicting_labels: str  # keep, or drop from training and scoring, identical windows labelled differently
    window_hop: int = 1  # the kept end starts a whole number of these samples after the utterance's first (1: anywhere)

    def __post_init__(self):
        _one_of(self.section, "channels", self.channels, ("mix", "speaker"))
        _one_of(self.section, "conflicting_labels", self.conflicting_labels, ("keep", "drop"))
        for name in ("sample_rate", "max_seconds", "trim_vad_threshold", "window_hop"):
            _bounded(self.section, name, getattr(self, name), PROCESSOR_BOUNDS[name])
        problem = window_hop_problem(self.window_hop, self.max_seconds, self.sample_rate)
        if problem:
            raise ParamsError(f"params.yaml: {self.section}.{problem}")


@dataclass(frozen=True)
class SplitConfig:
    section: ClassVar[str] = "split"
    val_fraction: float
    test_fraction: float
    seed: int

    def __post_init__(self):
        _fraction(self.section, "val_fraction", self.val_fraction, open_interval=True)
        _fraction(self.section, "test_fraction", self.test_fraction, open_interval=True)
        if self.val_fraction + self.test_fraction >= 1:
            raise ParamsError(f"params.yaml: split.val_fraction + split.test_fraction must be < 1 (the rest is "
                              f"train), got {self.val_fraction} + {self.test_fraction}")


@dataclass(frozen=True)
class TextConfig:
    section: ClassVar[str] = "text"
    tokenizer: str  # "train" (byte-level BPE fitted on the training split) or a hub name / local path
    vocab_size: int  # of a trained tokenizer
    max_length: int  # tokens per context; longer contexts keep their end
    n_previous: int  # previous utterances in the context
    punctuation: str  # strip or keep
    trim_overlap: bool  # previous utterances lose the words their successor repeats (overlapping windows)
    input_form: str  # context (speaker and <ts> tokens in one string) or pair (BERT segments: history, current)

    def __post_init__(self):
        _one_of(self.section, "punctuation", self.punctuation, ("strip", "keep"))
        _one_of(self.section, "input_form", self.input_form, INPUT_FORMS)
        _at_least(self.section, "vocab_size", self.vocab_size, 262)  # 256 bytes + our 5 special tokens + 1
        _at_most(self.section, "vocab_size", self.vocab_size, ENCODER_SIZES["vocab_size"])
        for name in ("max_length", "n_previous"):
            _bounded(self.section, name, getattr(self, name), PROCESSOR_BOUNDS[name])


@dataclass(frozen=True)
class TeacherConfig:
    section: ClassVar[str] = "teacher"
    base: str | None  # hub name / local path of a GPT-2 LM to fine-tune; None: a small GPT-2 from the sizes below
    n_layer: int
    n_embd: int
    n_head: int
    dropout: float  # GPT-2's dropout of embeddings and residuals, of the teacher built from config (a `base` keeps its
    # own); the text encoder made from it (model.text_encoder: teacher) fine-tunes with the same
    attention_dropout: float  # GPT-2's dropout of attention probabilities, likewise
    epochs: int
    batch_size: int
    lr: float
    seed: int
    device: str  # auto: CUDA when present, else CPU
    crossfit_folds: int | str  # >= 2: the train split's TRP comes from teachers that did not train on it; 0: in-sample;
    # "auto": 2 when a model reads the train split's TRP (model.use_trp, train.distill_weight > 0), else 0

    def __post_init__(self):
        for name in ("n_layer", "n_embd", "n_head", "batch_size"):
            _at_least(self.section, name, getattr(self, name), 1)
        for name in ("n_layer", "n_embd", "n_head"):
            _at_most(self.section, name, getattr(self, name), ENCODER_SIZES[name])
        _at_least(self.section, "epochs", self.epochs, 0)
        _at_least(self.section, "lr", self.lr, 0, strictly=True)
        for name in ("dropout", "attention_dropout"):  # the rule of the head's dropout (model.dropout)
            _bounded(self.section, name, getattr(self, name), MODEL_BOUNDS["dropout"])
        _device(self.section, self.device)
        if self.n_embd % self.n_head:
            raise ParamsError(f"params.yaml: teacher.n_embd ({self.n_embd}) must be a multiple of teacher.n_head "
                              f"({self.n_head})")
        if self.crossfit_folds != "auto" and (isinstance(self.crossfit_folds, str) or self.crossfit_folds == 1
                                              or self.crossfit_folds < 0):
            raise ParamsError(f"params.yaml: teacher.crossfit_folds must be auto, 0 (in-sample) or >= 2, "
                              f"got {self.crossfit_folds!r}")

    def folds(self, train_trp_read: bool) -> int:
        """The cross-fitting folds: `crossfit_folds`, or for auto 2 when a model reads the train split's TRP
        (`train_trp_read`) and 0 when none does (its train rows' TRP is then in-sample, and read by nothing)."""
        if self.crossfit_folds == "auto":
            return 2 if train_trp_read else 0
        return self.crossfit_folds


@dataclass(frozen=True)
class PretrainAudioConfig:
    section: ClassVar[str] = "pretrain_audio"
    epochs: int
    batch_size: int
    lr: float
    crop_s: float  # last seconds of each training segment (the end carries the cues)
    seed: int
    device: str
    summary_weight: float  # weight of the loss on the final contour predicted from the pooled frames (0: off)
    summary_s: float  # seconds of the final contour that summary describes

    def __post_init__(self):
        _at_least(self.section, "epochs", self.epochs, 1)
        _at_least(self.section, "summary_weight", self.summary_weight, 0)
        _at_least(self.section, "summary_s", self.summary_s, 0, strictly=True)
        _at_least(self.section, "batch_size", self.batch_size, 1)
        _at_least(self.section, "lr", self.lr, 0, strictly=True)
        _at_least(self.section, "crop_s", self.crop_s, 0, strictly=True)
        _device(self.section, self.device)


@dataclass(frozen=True)
class ModelConfig:
    section: ClassVar[str] = "model"
    seed: int  # initial weights of encoders built from config
    text_encoder: str  # teacher (the teacher LM's transformer), config, or a hub name / local path
    text_config: dict  # GPT-2 sizes for text_encoder: config
    audio_encoder: str  # pretrain_audio (the prosody-pretrained encoder), config, or a hub name / local path
    audio_config: dict  # HuBERT sizes for audio_encoder: config (and for pretrain_audio)
    text_pooling: str
    text_span: str  # the tokens text_pooling reads: all, current (segment B of a pair) or cls (a pair's first)
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
        _one_of(self.section, "text_pooling", self.text_pooling, TEXT_POOLINGS)
        _one_of(self.section, "text_span", self.text_span, TEXT_SPANS)
        _one_of(self.section, "audio_pooling", self.audio_pooling, AUDIO_POOLINGS)
        _one_of(self.section, "fusion_head", self.fusion_head, FUSION_HEADS)
        for name, bound in MODEL_BOUNDS.items():
            _bounded(self.section, name, getattr(self, name), bound)
        for name in ("text_config", "audio_config"):
            problem = encoder_size_problem(getattr(self, name))
            if problem:
                raise ParamsError(f"params.yaml: model.{name}: {problem}")


@dataclass(frozen=True)
class EmbedConfig:
    section: ClassVar[str] = "embed"
    device: str  # auto: CUDA when present, else CPU
    batch_size: int  # contexts per text-encoder batch (audio segments are encoded one at a time)

    def __post_init__(self):
        _device(self.section, self.device)
        _at_least(self.section, "batch_size", self.batch_size, 1)


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
    encoders: str  # frozen (cached embeddings), text (the text encoder trains, the audio is cached), gradual, full
    unfreeze_epoch: int
    criterion: str  # macro_f1 or min_class_f1 (early stopping and best checkpoint)
    patience: int
    seed: int
    device: str  # auto: CUDA when present (each launched process its own GPU), else CPU
    grad_accumulation: int  # pieces each process cuts its share of a batch into (batch_size stays the global batch)
    ema_decay: float  # 0: off; else val, the best checkpoint and the saved model use this moving average of the weights

    def __post_init__(self):
        _one_of(self.section, "loss", self.loss, ("focal", "ce"))
        if not 0 <= self.ema_decay < 1:
            raise ParamsError(f"params.yaml: train.ema_decay must be >= 0 and < 1, got {self.ema_decay!r}")
        _one_of(self.section, "sampler", self.sampler, ("weighted", "shuffle"))
        _one_of(self.section, "encoders", self.encoders, ENCODER_SCHEDULES)
        _one_of(self.section, "criterion", self.criterion, ("macro_f1", "min_class_f1"))
        for name in ("epochs", "batch_size", "patience", "grad_accumulation"):
            _at_least(self.section, name, getattr(self, name), 1)
        for name in ("lr_encoder", "weight_decay", "warmup_steps", "focal_gamma", "distill_weight", "unfreeze_epoch"):
            _at_least(self.section, name, getattr(self, name), 0)
        _at_least(self.section, "lr_head", self.lr_head, 0, strictly=True)
        _device(self.section, self.device)
        alpha = self.focal_alpha
        if alpha is not None and (len(alpha) != 3 or not all(_is(a, float) and a > 0 for a in alpha)):
            raise ParamsError(f"params.yaml: train.focal_alpha must be null or 3 positive numbers (keep, shift, "
                              f"backchannel), got {alpha!r}")


@dataclass(frozen=True)
class ExportConfig:
    section: ClassVar[str] = "export"
    calibration_segments: int  # train-split segments calibrating the int8 audio path (static); 0: dynamic int8
    seed: int  # which segments

    def __post_init__(self):
        _at_least(self.section, "calibration_segments", self.calibration_segments, 0)


@dataclass(frozen=True)
class OnsetGateConfig:
    section: ClassVar[str] = "onset_gate"
    window_s: float  # seconds of speech after the onset the gate reads (it decides this long after the onset)
    max_false_stop: float  # the share of val backchannels the gate may stop the agent on (sets its threshold)
    c: float  # the logistic regression's inverse L2 strength
    seed: int  # the noise each training window gets (training.onset_gate.NOISE_SNR_DB)

    def __post_init__(self):
        _bounded(self.section, "window_s", self.window_s, Bound(0.05, 2.0))
        _fraction(self.section, "max_false_stop", self.max_false_stop)
        _at_least(self.section, "c", self.c, 0, strictly=True)


@dataclass(frozen=True)
class ComputeConfig:
    section: ClassVar[str] = "compute"
    launcher: str  # what starts the train and embed commands (dvc.yaml): python (one process), or e.g.
    # "torchrun --nproc_per_node 4", "accelerate launch --multi_gpu --num_processes 4", "srun torchrun ..."
    precision: str  # bf16: bf16 autocast on CUDA in train and embed (CPU stays fp32); fp32: no autocast

    def __post_init__(self):
        _one_of(self.section, "precision", self.precision, ("bf16", "fp32"))
        if not self.launcher.strip():
            raise ParamsError("params.yaml: compute.launcher must name a command (python, torchrun ...), got ''")


ALL_CONFIGS = (DataConfig, DemoConfig, Mmf2fConfig, CallsConfig, LabelConfig, DownloadConfig, DropSilentConfig,
               SegmentConfig, SplitConfig, TextConfig, TeacherConfig, PretrainAudioConfig, ModelConfig, EmbedConfig,
               TrainConfig, ExportConfig, OnsetGateConfig, ComputeConfig)


def _is(value, kind) -> bool:
    """Whether a YAML value is of an annotated field type (an int is a float too; a bool is no number)."""
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def _check_type(section: str, name: str, value, annotation) -> None:
    kinds = typing.get_args(annotation) or (annotation,)
    if not any(value is None if k is type(None) else _is(value, typing.get_origin(k) or k) for k in kinds):
        names = " or ".join("null" if k is type(None) else (typing.get_origin(k) or k).__name__ for k in kinds)
        raise ParamsError(f"params.yaml: {section}.{name} must be {names}, got {value!r}")


def from_params(cls, params: dict):
    """Build `cls` from the whole params dict (its section `cls.section`), naming any missing, unknown, mistyped
    or out-of-range param."""
    section = params.get(cls.section) if isinstance(params, dict) else None
    if not isinstance(section, dict):
        raise ParamsError(f"params.yaml: section {cls.section!r} missing or not a mapping")
    names = [f.name for f in dataclasses.fields(cls)]
    missing = [n for n in names if n not in section]
    unknown = [k for k in section if k not in names]
    if missing or unknown:
        problems = [f"{cls.section}.{n} missing" for n in missing] + [f"{cls.section}.{k} unknown" for k in unknown]
        raise ParamsError(f"params.yaml: {', '.join(problems)}")
    hints = typing.get_type_hints(cls)
    for name in names:
        _check_type(cls.section, name, section[name], hints[name])
    return cls(**section)


def validate_params(params: dict) -> None:
    """Check every section of a params dict; the first problem raises ParamsError naming the param."""
    if not isinstance(params, dict):
        raise ParamsError("params.yaml: not a mapping of sections")
    known = {cls.section for cls in ALL_CONFIGS}
    unknown = sorted(set(params) - known)
    if unknown:
        raise ParamsError(f"params.yaml: unknown section(s) {unknown}; expected {sorted(known)}")
    configs = {cls: from_params(cls, params) for cls in ALL_CONFIGS}
    if configs[ModelConfig].text_span != "all" and configs[TextConfig].input_form != "pair":
        raise ParamsError(f"params.yaml: model.text_span {configs[ModelConfig].text_span!r} reads a segment of a "
                          f"pair; set text.input_form: pair (got {configs[TextConfig].input_form!r})")

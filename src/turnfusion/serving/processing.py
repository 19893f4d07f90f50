# SPDX-License-Identifier: Apache-2.0
"""The input policy, in one place: how an utterance and its history become a model's inputs, in training and in
every prediction (the segment stage, `predict.TurnPredictor`, `onnx_backend.OnnxTurnModel`, `TurnSession`,
`predict-csv` and the streaming session call it; the tokenize stage uses the same `text` functions).

- Audio: cut the row from its recording (`cut_row`), take the speaker's channel or the mix, resample to the
  model's rate, optionally cut trailing non-speech (Silero VAD), keep the last `max_seconds` (`segment_policy`).
- Text: the one context rule (`text.words.context_string`; for a whole table `text.contexts.build_contexts`, whose
  history is `text.history.histories`): the history as a live system has it, a `<ts>` where the speaker changes,
  never a label.
- Tokens: each context's ids, left-truncated to `max_length` (the end of the utterance carries the cues).

`ProcessorConfig` is saved beside every trained model and in every export as `preprocessor_config.json`, so a
model folder says how its inputs are made. Torch-free and pandas-free at import: the ONNX backend needs neither
(only a model with `trim_vad_threshold` set runs Silero VAD through the `silero-vad` package, which uses torch).

Documented defaults of `prepare`: no context means the utterance is treated like the first of a conversation; a
context utterance without audio has no audio segment (as at the start of a conversation). Audio is a file path
or an array (1-D, or 2-D with channels last) with its sample rate.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from turnfusion.audio import keep_end, load_mono, resample, select_channel
from turnfusion.choices import INPUT_FORMS, PROCESSOR_BOUNDS, window_hop_problem
from turnfusion.errors import DataError, one_line
from turnfusion.json_files import AUDIO_POLICY_FILE, PROCESSOR_FILE, json_object  # noqa: F401 (names of its files)
from turnfusion.text.words import (
    PUNCTUATION_POLICIES,
    context_string,
    encode_contexts,
    normalize,
    pad_right,
    pair_separator_id,
)

AUDIO_FIELDS = ("sample_rate", "max_seconds", "channels", "trim_vad_threshold", "window_hop")
PROCESSOR_CLASS = "TurnFusionProcessor"
MIN_SECONDS = 0.05  # a shorter utterance is no input, in training (skipped) as in prediction (refused)
TIME_TOLERANCE_S = 0.05  # annotations may end a few ms past the last sample
FULL_SCALE_LIMIT = 2.0  # float audio is full scale [-1, 1]; past this it is int16 values as floats, or broken


@dataclass(frozen=True)
class ProcessorConfig:
    """How a model's inputs are prepared; built from params (`from_params`) and saved with the model. The fields but
    `words` come from params.yaml (sections `segment` and `text`); `words` from the corpus."""

    sample_rate: int  # Hz of the audio the encoder reads (segment.sample_rate)
    max_seconds: float  # an utterance keeps its last max_seconds of audio (segment.max_seconds)
    channels: str  # mix (average the channels) or speaker (the speaker's own channel of a stereo input)
    trim_vad_threshold: float | None  # Silero VAD threshold cutting trailing non-speech; None: no trimming
    max_length: int  # tokens per context; longer contexts keep their end (left truncation)
    n_previous: int  # previous utterances in the text context
    punctuation: str  # strip or keep
    trim_overlap: bool  # previous utterances lose the words their successor repeats (overlapping windows)
    # false: trained on a corpus without words (recordings without transcripts): the text context is the speaker
    # turns alone (speaker and <ts> tokens) and text given to the model is not read; a folder saved before the field
    # existed was trained with words
    words: bool = True
    # context (one string with speaker and <ts> tokens) or pair (a BERT segment pair: history, current utterance):
    # `text.words`; a folder saved before the field existed used context
    input_form: str = "context"
    # the kept end of a longer utterance starts a whole number of window_hop samples after its first sample
    # (`audio.keep_end`; segment.window_hop): the hop of a local audio front end (320 for HuBERT's) lets a live session
    # encode every utterance in pieces; 1, the default: the last max_seconds exactly (a folder saved before the field)
    window_hop: int = 1

    @staticmethod
    def audio_policy(segment) -> dict:
        """The audio fields (AUDIO_FIELDS) from the `segment` param section (`config.SegmentConfig`): what the segment
        stage cuts with and writes beside its store (AUDIO_POLICY_FILE)."""
        return {"sample_rate": segment.sample_rate, "max_seconds": segment.max_seconds, "channels": segment.channels,
                "trim_vad_threshold": segment.trim_vad_threshold if segment.trim_to_speech else None,
                "window_hop": segment.window_hop}

    @classmethod
    def from_params(cls, audio_policy: dict, text, words: bool, source: str = "processor") -> ProcessorConfig:
        """The whole config, checked (`from_dict`): the segment store's `audio_policy`, the `text` param section
        (`config.TextConfig`) and whether the corpus has words (`schema.corpus_has_words`). The tokenize stage builds
        it, uses it and writes it into its store; training copies it into the model folder."""
        return cls.from_dict({**audio_policy, "max_length": text.max_length, "n_previous": text.n_previous,
                              "punctuation": text.punctuation, "trim_overlap": text.trim_overlap, "words": words,
                              "input_form": text.input_form}, source)

    @classmethod
    def of_token_store(cls, directory: Path | str, segments_policy: dict | None = None) -> ProcessorConfig:
        """The processor config the tokenize stage built, used and wrote into its store (`tokenize_table`); with the
        segment store's `segments_policy`, a DataError naming the fields where the two stores were made apart (the
        segments cut again without tokenizing again)."""
        path = Path(directory) / PROCESSOR_FILE
        if not path.is_file():
            raise DataError(f"{path}: missing; a token store holds the processor that made it (run the tokenize "
                            "stage)")
        config = cls.from_dict(json_object(path), str(path))
        # a store cut before window_hop existed kept the last max_seconds exactly
        apart = (config.differences({"window_hop": 1, **segments_policy}, AUDIO_FIELDS) if segments_policy is not None
                 else [])
        if apart:
            raise DataError(f"{path}: made from another segment store than the one given ({'; '.join(apart)}); run "
                            "the tokenize stage again")
        return config

    def differences(self, other: ProcessorConfig | dict, fields=None) -> list[str]:
        """The fields (all, or `fields`) where `other` (a config, or a dict of fields) differs, as `name: mine !=
        theirs`."""
        theirs = other if isinstance(other, dict) else other.to_dict()
        return [f"{k}: {getattr(self, k)!r} != {theirs.get(k)!r}" for k in fields or self.to_dict()
                if theirs.get(k) != getattr(self, k)]

    @classmethod
    def from_dict(cls, values, source: str, max_positions: int | None = None) -> ProcessorConfig:
        """Checked before any input is prepared with it (a model folder may come from a stranger): exactly the
        fields, each of its type and range; `max_length` within the text encoder's `max_positions`. A DataError
        names `source` and the field."""
        if not isinstance(values, dict):
            raise DataError(f"{source}: must be a JSON object, got {type(values).__name__}")
        # fields added after folders were saved without them, at the values those folders were trained with
        earlier = {"words": True, "input_form": "context", "window_hop": 1}
        values = {**earlier, **{k: v for k, v in values.items() if k != "processor_class"}}
        names = [f.name for f in dataclasses.fields(cls)]
        missing, unknown = sorted(set(names) - set(values)), sorted(set(values) - set(names))
        if missing:
            raise DataError(f"{source}: lacks {missing}")
        if unknown:
            raise DataError(f"{source}: unknown field(s) {unknown}")

        def bad(key: str, rule: str):
            return DataError(f"{source}: {key} must be {rule}, got {values.get(key)!r:.60}")

        for key, bound in PROCESSOR_BOUNDS.items():  # the bounds of the params check too (`choices`)
            if not (key == "trim_vad_threshold" and values[key] is None) and not bound.holds(values[key]):
                raise bad(key, f"{'null or ' if key == 'trim_vad_threshold' else ''}{bound.rule()}")
        if max_positions is not None and values["max_length"] > max_positions:
            raise bad("max_length", f"a whole number from 1 to the text encoder's {max_positions}")
        if window_hop_problem(values["window_hop"], values["max_seconds"], values["sample_rate"]):
            raise bad("window_hop", f"at most half of max_seconds x sample_rate "
                                    f"({int(values['max_seconds'] * values['sample_rate']) // 2} samples)")
        if values["channels"] not in ("mix", "speaker"):
            raise bad("channels", "mix or speaker")
        if values["punctuation"] not in PUNCTUATION_POLICIES:
            raise bad("punctuation", f"one of {list(PUNCTUATION_POLICIES)}")
        if values["input_form"] not in INPUT_FORMS:
            raise bad("input_form", f"one of {list(INPUT_FORMS)}")
        for key in ("trim_overlap", "words"):
            if not isinstance(values[key], bool):
                raise bad(key, "true or false")
        return cls(**values)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def save_pretrained(self, directory: Path | str) -> Path:
        path = Path(directory) / PROCESSOR_FILE
        path.write_text(json.dumps({"processor_class": PROCESSOR_CLASS, **self.to_dict()}, indent=2) + "\n",
                        encoding="utf-8")
        return path

    @classmethod
    def from_pretrained(cls, directory: Path | str, model_config: dict, max_positions: int | None = None
                        ) -> ProcessorConfig:
        """A model folder's processor config: its `preprocessor_config.json`, or in a folder saved before that
        file existed the `preprocessing` of its config.json (`model_config`)."""
        path = Path(directory) / PROCESSOR_FILE
        if path.is_file():
            return cls.from_dict(json_object(path), str(path), max_positions)
        if "preprocessing" in model_config:  # saved before preprocessor_config.json existed (commit fa52468)
            return cls.from_dict(model_config["preprocessing"], f"{Path(directory) / 'config.json'}: preprocessing",
                                 max_positions)
        raise DataError(f"{path}: missing; a model folder says how its inputs are prepared (train or export again)")


# --- audio -------------------------------------------------------------------------------------------------
def segment_policy(wave: np.ndarray, rate: int, max_seconds: float, vad_threshold: float | None,
                   window_hop: int = 1) -> tuple[np.ndarray, float]:
    """(the segment a model sees, seconds of trailing non-speech cut): with `vad_threshold` (Silero VAD's),
    the end moves back to the last speech the VAD finds, if any; then the last `max_seconds` are kept, cut a whole
    number of `window_hop` samples in (`audio.keep_end`). Shared by the segment stage and every prediction, so
    training and serving cannot drift."""
    trimmed = 0.0
    if vad_threshold is not None:
        from turnfusion.vad import speech_spans

        spans = speech_spans(wave, rate, vad_threshold)
        if spans and spans[-1][1] * rate < len(wave):
            trimmed = (len(wave) - int(spans[-1][1] * rate)) / rate
            wave = wave[: int(spans[-1][1] * rate)]
    return keep_end(wave, int(max_seconds * rate), window_hop), trimmed


def timestamp_problem(start: float, end: float, duration: float) -> str | None:
    """Why a row's [start, end] cannot be cut from a recording of `duration` seconds, or None."""
    if start is None or end is None or math.isnan(start) or math.isnan(end):
        return "nan_timestamp"
    if start < 0:
        return "negative_start"
    if start >= end:
        return "start_not_before_end"
    if end - start < MIN_SECONDS:
        return "shorter_than_50ms"
    if start >= duration or end > duration + TIME_TOLERANCE_S:
        return "beyond_recording"
    return None


def cut_row(recording: np.ndarray, rate: int, row, channels: str,
            needs_words: bool = True) -> tuple[np.ndarray | None, str]:
    """(mono waveform of one utterance row, "") or (None, why it cannot be used: `schema.row_problem`, a
    timestamp problem, or non-finite samples): the one cut-and-validate policy of the segment stage and of
    batch prediction; `segment_policy` then shapes the cut.

    `recording`: (samples, channels) at `rate`; `row` has start, end, text and speaker, and where its audio is
    elsewhere in the recording `audio_start` / `audio_end` (`schema.audio_span`); `channels`: "mix"
    averages the channels, "speaker" takes the speaker's own channel (0 = left, 1 = right) of a stereo
    recording; `needs_words`: a row without words is refused (`ProcessorConfig.words`).
    """
    from turnfusion.schema import audio_span, row_problem  # tables: pandas, which serving does not need

    start, end = audio_span(row)
    problem = (row_problem(row, needs_words) or timestamp_problem(row.start, row.end, math.inf)
               or timestamp_problem(start, end, len(recording) / rate))
    if problem:
        return None, problem
    cut = recording[int(round(start * rate)): int(round(end * rate))]
    mono = select_channel(cut, int(row.speaker) if channels == "speaker" else None)
    if not np.isfinite(mono).all():
        return None, "non_finite_audio"
    return mono, ""


def audio_array(audio: np.ndarray, what: str) -> np.ndarray:
    """An audio array (1-D, or 2-D with channels last) as float32: int16 PCM / 32768, int32 PCM / 2**31, float as
    given. Other integer types hold int16 values or are refused: a Python list of int16 samples becomes int64, and
    scaling it by int64's range would make speech silence. Other types (bool, unsigned, object, complex) are a
    DataError, never read as numbers."""
    if audio.ndim not in (1, 2):
        raise DataError(f"{what}: audio must be 1-D, or 2-D with channels last, got shape {audio.shape}")
    if audio.dtype in (np.int16, np.int32):
        return audio.astype(np.float32) / float(-np.iinfo(audio.dtype).min)
    if np.issubdtype(audio.dtype, np.signedinteger) and audio.dtype.itemsize > 2:
        low, high = (int(audio.min()), int(audio.max())) if audio.size else (0, 0)
        if low < -32768 or high > 32767:
            raise DataError(f"{what}: {audio.dtype} samples from {low} to {high}, beyond int16 PCM; give int16 or "
                            "int32 PCM (own full scale) or float (full scale -1..1)")
        return audio.astype(np.float32) / 32768.0
    if not np.issubdtype(audio.dtype, np.floating):
        raise DataError(f"{what}: audio samples must be float (full scale -1..1) or int16 / int32 PCM, got "
                        f"dtype {audio.dtype}")
    return audio.astype(np.float32, copy=False)


def check_full_scale(wave: np.ndarray, what: str) -> None:
    """Finite and within +-FULL_SCALE_LIMIT: what training saw (int16 PCM), give or take a resampler's overshoot."""
    if not np.isfinite(wave).all():
        raise DataError(f"{what}: audio has non-finite samples (NaN or inf)")
    peak = float(np.abs(wave).max()) if wave.size else 0.0
    if peak > FULL_SCALE_LIMIT:
        raise DataError(f"{what}: audio reaches {peak:.3g}, but float audio is full scale (-1..1); integer PCM "
                        "passed as floats? divide int16 samples by 32768")


# --- tokens ------------------------------------------------------------------------------------------------
def load_tokenizer_file(path: Path):
    """The `tokenizer.json` saved beside a model, as a `tokenizers.Tokenizer`; a DataError naming the file."""
    from tokenizers import Tokenizer

    if not path.is_file():
        raise DataError(f"{path}: missing; a text model's folder has its tokenizer")
    try:
        return Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises a bare Exception for a malformed file
        raise DataError(f"{path}: not a tokenizer file ({one_line(exc)})") from None


# --- the processor ---------------------------------------------------------------------------------------
class TurnFusionProcessor:
    """Prepares one utterance with its history as the model was trained: (context string, audio segments), then
    token ids. `uses_audio` and `audio_segments` come from the model's config (what the model reads)."""

    def __init__(self, config: ProcessorConfig, uses_audio: bool, audio_segments: int, tokenizer=None):
        self.config, self.uses_audio, self.audio_segments = config, uses_audio, audio_segments
        self.tokenizer = tokenizer
        # previous utterances the model reads: text context and audio segments beside the current one
        self.context_length = max(config.n_previous, audio_segments - 1)
        self.reads_context_audio = uses_audio and audio_segments > 1  # else a history needs no audio

    def words(self, text, what: str) -> str:
        """The normalised words of one utterance; a DataError naming `what` when there are none or they are not
        Unicode. A model trained without words reads none: "" whatever the text."""
        if not self.config.words:
            return ""
        if isinstance(text, str) and not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise DataError(f"{what}: text is not valid Unicode ({text[exc.start]!r} at character {exc.start}: "
                                "bytes that are not UTF-8?)") from None
        normalized = normalize(text, self.config.punctuation) if isinstance(text, str) else ""
        if not normalized:
            raise DataError(f"{what}: empty text (got {text!r:.60}); every utterance needs its words")
        return normalized

    def has_words(self, text) -> bool:
        """Whether `text` gives this model what it reads (`words` accepts it; a model trained without words reads
        none, so any text does)."""
        try:
            self.words(text, "words")
        except DataError:
            return False
        return True

    def audio(self, audio, sample_rate: int | None, what: str, speaker: int) -> np.ndarray:
        """One utterance's segment: mono at the model's rate (with `channels: speaker` a stereo input gives the
        speaker's own channel, as in training), then `segment_policy`."""
        rate = self.config.sample_rate
        channel = speaker if self.config.channels == "speaker" else None
        if isinstance(audio, (str, Path)):
            wave = load_mono(audio, rate, channel)
        elif isinstance(audio, np.ndarray):
            if sample_rate is None:
                raise DataError(f"{what}: an audio array needs its sample_rate")
            if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate < 1000:
                raise DataError(f"{what}: sample_rate must be a whole number of samples per second (>= 1000), "
                                f"got {sample_rate!r}")
            wave = resample(select_channel(audio_array(audio, what), channel if audio.ndim == 2 else None),
                            sample_rate, rate)
        else:
            raise DataError(f"{what}: audio must be a file path or a numpy array, got {type(audio).__name__}")
        check_full_scale(wave, what)
        if len(wave) < int(MIN_SECONDS * rate):
            raise DataError(f"{what}: audio is shorter than 50 ms ({len(wave)} samples at {rate} Hz)")
        return segment_policy(wave, rate, self.config.max_seconds, self.config.trim_vad_threshold,
                              self.config.window_hop)[0]

    def prepare(self, text: str, audio, speaker: int = 0, context: list[dict] | None = None,
                sample_rate: int | None = None) -> tuple[str, list]:
        """(context string, [current, previous, ...] waveforms or None) for one utterance.

        As in training, the text context holds the last `n_previous` utterances and the audio the current
        segment and its `audio_segments - 1` predecessors.
        """
        n_text, n_audio = self.config.n_previous + 1, self.audio_segments
        if context is not None and (not isinstance(context, (list, tuple))
                                    or not all(isinstance(u, dict) for u in context)):
            raise DataError(f"context must be a list of utterances ({{'text', 'speaker', 'audio'}} dicts), oldest "
                            f"first, got {type(context).__name__} {context!r:.40}")
        context = list(context or [])[-self.context_length:] if self.context_length else []
        utterances = [*context, {"text": text, "speaker": speaker, "audio": audio, "sample_rate": sample_rate}]
        names = [f"context utterance {k + 1}" for k in range(len(context))] + ["current utterance"]
        for u, what in zip(utterances, names, strict=True):
            speaker_id = u.get("speaker")
            whole = isinstance(speaker_id, (int, np.integer)) and not isinstance(speaker_id, bool)
            if not whole or speaker_id not in (0, 1):
                raise DataError(f"{what}: speaker must be 0 or 1, got {type(speaker_id).__name__} {speaker_id!r:.40}")
            if "shift_after" in u:
                raise DataError(f"{what}: shift_after is not read: a turn shift is where the speaker changes, as "
                                "a live system observes it (labels never reach an input)")
        texts = [self.words(u.get("text"), what) for u, what in zip(utterances, names, strict=True)]
        speakers = [u["speaker"] for u in utterances]
        text = context_string(texts[-n_text:], speakers[-n_text:], self.config.trim_overlap, self.config.words,
                              self.config.input_form)
        if self.uses_audio and audio is None:
            raise DataError("current utterance: this model needs its audio")
        # current first, then its predecessors; audio the model does not read is still checked, never ignored
        waves = [None if u.get("audio") is None else
                 self.audio(u["audio"], u.get("sample_rate", sample_rate), what, u["speaker"])
                 for u, what in list(zip(utterances, names, strict=True))[::-1]]
        if not self.uses_audio:
            return text, []
        return text, waves[:n_audio] + [None] * (n_audio - len(waves))

    def token_ids(self, contexts: list[str]) -> list[list[int]]:
        """Each context's ids, left-truncated to `max_length`, as the tokenize stage wrote them."""
        if self.tokenizer is None:
            raise DataError("this model reads no text: it has no tokenizer")
        return encode_contexts(self.tokenizer, contexts, self.config.max_length, self.config.input_form)[0]

    def text_batch(self, contexts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(input_ids, attention_mask) of contexts, truncated and padded as in training."""
        return pad_right(self.token_ids(contexts))

    @classmethod
    def from_pretrained(cls, directory: Path | str, model_config: dict, max_positions: int | None = None
                        ) -> TurnFusionProcessor:
        """The processor of a model folder (trained or exported): its `preprocessor_config.json` and, for a model
        that reads text, its `tokenizer.json`; what the model reads from its checked `config.json`
        (`serving.predictor.check_model_config`, which gives `max_positions`)."""
        directory = Path(directory)
        config = ProcessorConfig.from_pretrained(directory, model_config, max_positions)
        mode = model_config["mode"]
        trained_with = model_config.get("text_input", "context")  # a folder saved before the field: context
        if mode != "audio" and config.input_form != trained_with:
            raise DataError(f"{directory / PROCESSOR_FILE}: input_form {config.input_form!r}, but the model in "
                            f"{directory / 'config.json'} was trained on {trained_with!r} inputs; a processor of "
                            "another model")
        tokenizer = load_tokenizer_file(directory / "tokenizer.json") if mode != "audio" else None
        if tokenizer is not None and tokenizer.padding is not None:
            raise DataError(f"{directory / 'tokenizer.json'}: pads every input to {tokenizer.padding['length']} "
                            "tokens: a model trained on such padded ids (before the padding of a hub tokenizer "
                            "file was ignored) read pads instead of words; train it again")
        if tokenizer is not None and config.input_form == "pair" and \
                pair_separator_id(tokenizer) != model_config["text_config"].get("sep_token_id"):
            raise DataError(f"{directory / 'tokenizer.json'}: its pair template's separator is "
                            f"{pair_separator_id(tokenizer)!r}, but the text encoder's sep_token_id in config.json "
                            f"is {model_config['text_config'].get('sep_token_id')!r:.30}; a tokenizer of another model")
        if tokenizer is not None:  # an id beyond the embedding table fails inside the encoder, or reads garbage
            vocab = model_config["text_config"].get("vocab_size")
            if isinstance(vocab, bool) or not isinstance(vocab, int) or tokenizer.get_vocab_size() > vocab:
                raise DataError(f"{directory / 'tokenizer.json'}: {tokenizer.get_vocab_size()} tokens, but the text "
                                f"encoder's vocab_size in config.json is {vocab!r:.40}; a tokenizer of another model")
        return cls(config, mode != "text", model_config["audio_segments"], tokenizer)

    def save_pretrained(self, directory: Path | str) -> Path:
        return self.config.save_pretrained(directory)

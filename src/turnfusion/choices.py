# SPDX-License-Identifier: Apache-2.0
"""The names and bounds a model's config may take, in one import-free module: the models build from them, and the
params check (`config.py`), the model folder check (`serving.predictor.check_model_config`) and the processor config
(`processing.ProcessorConfig.from_dict`) validate against the same tables without importing torch, so that a
params file that trains a model its own loader would refuse is refused before any stage runs."""

from __future__ import annotations

from dataclasses import dataclass

MODES = ("text", "audio", "fusion")
AUDIO_POOLINGS = ("mean", "max", "attention", "stats", "last_k")
TEXT_POOLINGS = ("last", "mean", "max", "attention", "mean_max")
# how a context reaches the text encoder (`text.words`): context, one string with speaker and turn-shift tokens
# (GPT-2's and the teacher's form), or pair, a BERT segment pair: the history in plain words, then the current utterance
INPUT_FORMS = ("context", "pair")
# which tokens the text pooling reads (`models.pooling.span_mask`): all, the current utterance's (segment B of a pair)
# or the first ([CLS] of a pair)
TEXT_SPANS = ("all", "current", "cls")
FUSION_HEADS = ("concat", "gated", "tensor", "experts", "experts_concat")
SPLITS = ("train", "val", "test")
POOL = "pool"  # a source's rows without a split of their own: split by conversation with the `split` params
ENCODER_SCHEDULES = ("frozen", "text", "gradual", "full")  # train.encoders: which encoders train, and when
MAX_CONTEXT = 64  # previous utterances a model may read (text or audio): a bound a crafted model config cannot pass
KEEP, SHIFT, BACKCHANNEL = 0, 1, 2  # the labels: what happens after an utterance
LABEL_NAMES = {KEEP: "keep", SHIFT: "shift", BACKCHANNEL: "backchannel"}

# Sizes of a text / audio encoder's config (GPT-2's, BERT's and HuBERT's names), in params (model.text_config,
# model.audio_config) and in a model folder's config.json: one bound each, far above any model of this kind, so that a
# typo or a hostile file is a one-line error and not a traceback or a 512 GB allocation. Keys not listed go to
# transformers as they are.
ENCODER_SIZES = {
    "n_layer": 64, "num_hidden_layers": 64, "n_embd": 8192, "hidden_size": 8192, "n_head": 128,
    "num_attention_heads": 128, "n_inner": 65_536, "intermediate_size": 65_536, "n_positions": 65_536,
    "max_position_embeddings": 65_536, "vocab_size": 1_000_000, "type_vocab_size": 16,
    "num_conv_pos_embeddings": 1024, "num_conv_pos_embedding_groups": 1024,
}
ENCODER_SIZE_LISTS = {"conv_dim": 8192, "conv_kernel": 1024, "conv_stride": 1024}  # one entry per conv layer
MAX_CONV_LAYERS = 16


def encoder_size_problem(values) -> str | None:
    """Why an encoder config (a dict of sizes) cannot be built, naming the key, or None."""
    if not isinstance(values, dict):
        return f"must be a mapping of sizes, got {type(values).__name__}"

    def whole(value, most: int) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= most

    for key, most in ENCODER_SIZES.items():
        if key in values and values[key] is not None and not whole(values[key], most):
            return f"{key} must be a whole number from 1 to {most}, got {values[key]!r:.40}"
    lengths = set()
    for key, most in ENCODER_SIZE_LISTS.items():
        if key in values:
            value = values[key]
            if not isinstance(value, list) or not 1 <= len(value) <= MAX_CONV_LAYERS \
                    or not all(whole(v, most) for v in value):
                return (f"{key} must be a list of 1 to {MAX_CONV_LAYERS} whole numbers from 1 to {most}, "
                        f"got {value!r:.60}")
            lengths.add(len(value))
    if "conv_dim" in values and not {"conv_kernel", "conv_stride"} <= set(values):
        lengths.add(7)  # HuBERT's default kernels and strides: seven conv layers
    if len(lengths) > 1:
        return f"conv_dim, conv_kernel and conv_stride need one entry per layer each, got lengths {sorted(lengths)}"
    for width, heads in (("n_embd", "n_head"), ("hidden_size", "num_attention_heads")):
        if width in values and heads in values and values[width] % values[heads]:
            return f"{width} ({values[width]}) must be a multiple of {heads} ({values[heads]})"
    return None


@dataclass(frozen=True)
class Bound:
    """The range of one numeric field: [low, high], `whole` for integers, `below_high` for [low, high)."""
    low: float
    high: float
    whole: bool = False
    above_low: bool = False  # (low, ...
    below_high: bool = False  # ..., high)

    def holds(self, value) -> bool:
        if isinstance(value, bool) or not isinstance(value, int if self.whole else (int, float)):
            return False
        if value != value or (self.above_low and value <= self.low) or (self.below_high and value >= self.high):
            return False  # NaN, or an open end
        return self.low <= value <= self.high

    def rule(self) -> str:
        kind = "a whole number" if self.whole else "a number"
        if self.above_low and self.below_high:
            return f"{kind} strictly between {self.low} and {self.high}"
        return (f"{kind} {'above' if self.above_low else 'from'} {self.low} to "
                f"{'below ' if self.below_high else ''}{self.high}")


# What a saved processor config (preprocessor_config.json) may hold; params keys of the same names (segment.*,
# text.*). max_length is also bounded by the text encoder's positions where those are known.
PROCESSOR_BOUNDS = {
    "sample_rate": Bound(1000, 384_000, whole=True),  # Hz of the audio the encoder reads
    "max_seconds": Bound(0.05, 3600),  # an utterance keeps its last max_seconds; under 50 ms is no input
    "window_hop": Bound(1, 65_536, whole=True),  # samples: the kept end starts a whole number of them in
    "trim_vad_threshold": Bound(0, 1, above_low=True, below_high=True),  # Silero VAD's probability
    "max_length": Bound(1, 65_536, whole=True),  # tokens per context
    "n_previous": Bound(0, MAX_CONTEXT, whole=True),  # previous utterances in the text context
}
# What a saved model config (config.json) may hold; params keys of the same names (model.*).
MODEL_BOUNDS = {
    "audio_segments": Bound(1, MAX_CONTEXT + 1, whole=True),  # the current utterance and its predecessors
    "last_k": Bound(1, 10_000, whole=True),  # frames for audio_pooling: last_k
    "hidden_size": Bound(1, 65_536, whole=True),  # of the fusion head
    "tensor_rank": Bound(1, 1024, whole=True),  # of the tensor fusion head
    "dropout": Bound(0, 1, below_high=True),  # of the head
    "modality_dropout": Bound(0, 1, below_high=True),  # 1 would drop a modality from every training example
}


def window_hop_problem(window_hop: int, max_seconds: float, sample_rate: int) -> str | None:
    """Why `window_hop` cannot cut the kept end of `max_seconds` at `sample_rate` (`audio.keep_end`), or None: a hop
    over half the kept samples would keep little or nothing of a long utterance."""
    most = int(max_seconds * sample_rate) // 2
    if window_hop > most:
        return f"window_hop must be at most half of max_seconds x sample_rate ({most} samples), got {window_hop}"
    return None


def text_input_problem(text_input, text_span, text_config: dict) -> str | None:
    """Why a text encoder cannot read `text_input` (`choices.INPUT_FORMS`) pooled over `text_span`
    (`choices.TEXT_SPANS`), or None: a pair and the spans inside it need a BERT-type encoder that knows its
    segment separator (`sep_token_id`, which training writes into its config) and has two segment types."""
    if text_input not in INPUT_FORMS:
        return f"text_input must be one of {list(INPUT_FORMS)}, got {text_input!r:.60}"
    if text_span not in TEXT_SPANS:
        return f"text_span must be one of {list(TEXT_SPANS)}, got {text_span!r:.60}"
    if text_span != "all" and text_input != "pair":
        return f"text_span {text_span!r} reads a segment of a pair; the text input is {text_input!r}"
    if text_input != "pair":
        return None
    sep, vocab, types = (text_config.get(k) for k in ("sep_token_id", "vocab_size", "type_vocab_size"))
    whole = [isinstance(v, int) and not isinstance(v, bool) for v in (sep, vocab)]
    if text_config.get("model_type") != "bert" or not all(whole) or not 0 <= sep < vocab:
        return ("a pair input needs a BERT-type text encoder whose text_config gives its segment separator "
                f"(model_type bert, sep_token_id within vocab_size), got {text_config.get('model_type')!r:.30} "
                f"with sep_token_id {sep!r:.30} and vocab_size {vocab!r:.30}")
    if types is not None and (isinstance(types, bool) or not isinstance(types, int) or types < 2):
        return f"a pair input needs two segment types (type_vocab_size >= 2), got type_vocab_size {types!r:.30}"
    return None

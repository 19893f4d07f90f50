"""The names a model's config may take, in one import-free module: the models build from them and the params
check (`config.py`) validates against them without importing torch."""

MODES = ("text", "audio", "fusion")
AUDIO_POOLINGS = ("mean", "max", "attention", "stats", "last_k")
TEXT_POOLINGS = ("last", "mean", "max", "attention", "mean_max")
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

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

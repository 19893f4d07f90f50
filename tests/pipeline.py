"""A tiny end-to-end pipeline for tests: recordings -> segment store -> tokens -> saved model -> embedding cache,
all through the library functions the stages call."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from conftest import params_config, tone, toy_config, utterance_table

from turnfusion.config import EmbedConfig, ModelConfig, SegmentConfig, TextConfig
from turnfusion.data.segment import build_store
from turnfusion.data.stores import PackedTokens
from turnfusion.data.tokenize import tokenize_table
from turnfusion.models import TurnFusionModel
from turnfusion.serving.processing import ProcessorConfig
from turnfusion.training.datasets import load_utterances
from turnfusion.training.embed import embed

AUDIO_CFG = {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32,
             "conv_dim": [8] * 7, "num_conv_pos_embeddings": 8, "num_conv_pos_embedding_groups": 2,
             "apply_spec_augment": False}


@dataclass
class Pipeline:
    root: Path
    csv: Path
    audio_dir: Path
    model_dir: Path
    table: object  # the joined utterance table
    tokens: PackedTokens
    store: object
    cache: Path


def recordings(audio_dir: Path) -> None:
    """Two conversations: a stereo one (speakers on different channels, different tones) and a mono one."""
    audio_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    left = tone(6, 44100, 180) * (1 + rng.normal(0, 0.1, 6 * 44100)).astype(np.float32)
    right = tone(6, 44100, 300, 0.15)
    sf.write(audio_dir / "s1.wav", np.stack([left, right], axis=1), 44100)
    sf.write(audio_dir / "m1.wav", tone(5, 22050, 250) * np.linspace(0.2, 1, 5 * 22050, dtype=np.float32), 22050)


def build(root: Path, channels: str = "mix", n_previous: int = 1, audio_segments: int = 3,
          max_seconds: float = 1.2, max_length: int = 12, mode: str = "fusion", splits: tuple = ("train",),
          words: bool = True) -> Pipeline:
    """A small store, tokens, model and embedding cache; row k of the table in `splits[k % len(splits)]`; without
    `words`, every row's text is empty (recordings without transcripts)."""
    root.mkdir(parents=True, exist_ok=True)
    recordings(root / "raw")
    said = ["so i went to the market and", "did you", "yeah", "it was nice you know", "what about you", "right"]
    rows = [("s1", f"s1_{i}", said[i % 6], i % 3, 0.4 * i, 0.4 * i + 0.3 + 0.25 * (i % 3), i % 2) for i in range(10)]
    rows += [("m1", f"m1_{i}", said[(i + 2) % 6], i % 3, 0.7 * i, 0.7 * i + 0.6, (i // 2) % 2) for i in range(6)]
    table = utterance_table(rows)
    if not words:
        table["text"] = np.nan  # as an empty cell of the label stage's CSV reads back
    table.to_csv(root / "utterances.csv", index=False)
    table["split"] = [splits[k % len(splits)] for k in range(len(table))]
    segment = SegmentConfig(sample_rate=16000, max_seconds=max_seconds, channels=channels, trim_to_speech=False,
                            trim_vad_threshold=0.5, conflicting_labels="keep")
    build_store(table, root / "raw", root / "segments", segment, progress=False)
    text = params_config(TextConfig, vocab_size=300, max_length=max_length, n_previous=n_previous)
    tokenize_table(load_segments(root), root / "tokens", text, load_store(root).audio_policy())
    tokens = PackedTokens(root / "tokens")
    torch.manual_seed(0)
    gpt2 = {"vocab_size": len(tokens.tokenizer()), "n_layer": 1, "n_embd": 16, "n_head": 2, "n_positions": 32}
    model = TurnFusionModel(toy_config(mode, gpt2, AUDIO_CFG, hidden_size=16, audio_segments=audio_segments,
                                       audio_pooling="mean")).eval()
    for param in model.head.parameters():  # a head that reacts to its inputs, so differences show
        torch.nn.init.normal_(param, std=0.2)
    model.save_pretrained(root / "model")
    tokens.tokenizer().save_pretrained(root / "model")
    ProcessorConfig.of_token_store(root / "tokens").save_pretrained(root / "model")  # as the train stage does
    if mode == "fusion":  # the embed stage, with this model's encoders loaded by local path
        model.text_encoder.save_pretrained(root / "enc_text")
        model.audio_encoder.save_pretrained(root / "enc_audio")
        cfg = params_config(ModelConfig, text_encoder=str(root / "enc_text"), audio_encoder=str(root / "enc_audio"))
        embed(tokens, load_store(root), root / "cache", cfg, max_length, root / "no_teacher", root / "no_pretrained",
              params_config(EmbedConfig, device="cpu"))
    store, tokens, joined = load_utterances(root / "segments", root / "tokens", None, audio_segments)
    return Pipeline(root, root / "utterances.csv", root / "raw", root / "model", joined, tokens, store, root / "cache")


def load_segments(root: Path):
    return load_store(root).index


def load_store(root: Path):
    from turnfusion.data.stores import SegmentStore

    return SegmentStore.open(root / "segments")

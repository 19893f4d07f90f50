"""Writes tests/data/legacy_model: a tiny fusion model saved by turnfusion before the processor had its own file
(commit fa52468: the input policy inside config.json's `preprocessing`), with the probabilities that code gave
for fixed inputs (expected.json). test_processing loads it with today's code and must give the same.

Run from the repository root with that commit's code on the path (`PYTHONPATH=<checkout of fa52468>/src`)."""

import json
import sys
from pathlib import Path

import numpy as np
import torch

OUT = Path(__file__).parent / "legacy_model"
AUDIO_CFG = {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32,
             "conv_dim": [8] * 7, "num_conv_pos_embeddings": 8, "num_conv_pos_embedding_groups": 2,
             "apply_spec_augment": False}
TEXTS = ["hello there how are you", "i went to the market and", "so what did you buy", "mm-hmm", "oh nice"]


def inputs():
    """The utterances the expected probabilities are for: (text, wave, speaker, context)."""
    rng = np.random.default_rng(7)
    waves = [(0.2 * np.sin(2 * np.pi * f * np.arange(int(s * 16000)) / 16000)
              + rng.normal(0, 0.01, int(s * 16000))).astype(np.float32)
             for f, s in ((180, 1.2), (240, 0.7), (150, 2.0))]
    first = {"text": "i went to the market and", "speaker": 0, "audio": waves[0], "sample_rate": 16000}
    second = {"text": "so what did you buy", "speaker": 1, "audio": waves[1], "sample_rate": 16000}
    return [("hello there how are you", waves[0], 0, []),
            ("oh nice", waves[2], 1, [first]),
            ("mm-hmm okay", waves[1], 0, [first, second])]


def main() -> None:
    from turnfusion.data.tokenize import train_tokenizer
    from turnfusion.models import TurnFusionConfig, TurnFusionModel
    from turnfusion.serving.predict import TurnPredictor

    OUT.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer(TEXTS * 10, 300)
    torch.manual_seed(0)
    text = {"vocab_size": len(tokenizer), "n_layer": 1, "n_embd": 16, "n_head": 2, "n_positions": 32}
    model = TurnFusionModel(TurnFusionConfig(
        mode="fusion", text_config=text, audio_config=AUDIO_CFG, text_pooling="last", audio_pooling="mean",
        last_k=10, audio_segments=2, fusion_head="concat", hidden_size=16, dropout=0.1, tensor_rank=4,
        modality_dropout=0.0, use_trp=False,
        preprocessing={"sample_rate": 16000, "max_seconds": 1.5, "channels": "mix", "trim_vad_threshold": None,
                       "max_length": 24, "n_previous": 2, "punctuation": "strip", "trim_overlap": True}))
    for param in model.head.parameters():  # a head that reacts to its inputs
        torch.nn.init.normal_(param, std=0.3)
    model.save_pretrained(OUT)
    tokenizer.save_pretrained(OUT)
    predictor = TurnPredictor(OUT)
    expected = [predictor.predict(t, w, speaker=s, context=c, sample_rate=16000) for t, w, s, c in inputs()]
    (OUT / "expected.json").write_text(json.dumps(expected, indent=2) + "\n")
    print(json.dumps(expected), file=sys.stderr)


if __name__ == "__main__":
    main()

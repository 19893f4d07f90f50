"""The trainable-encoder path: token ids and waveforms go through the model's own encoders."""

import torch

from conftest import utterance_table
from test_training import AUDIO_CFG
from turnfusion.features import RawExamples, utterance_table as examples_table
from turnfusion.models import TurnFusionConfig, TurnFusionModel
from turnfusion.segments import SegmentStore, build_store
from turnfusion.text import PackedTokens, tokenize_table
from turnfusion.training import TrainConfig, predict, train


def raw_sets(recording_dir, tmp_path):
    rows = [("v1", f"v1_{i}", f"word{i % 3} and so", i % 3, 0.5 * i, 0.5 * i + 0.5, i % 2) for i in range(8)]
    rows += [("v2", f"v2_{i}", "yes right", i % 3, 0.5 * i, 0.5 * i + 0.5, 0) for i in range(6)]
    table = utterance_table(rows)
    table["split"] = ["train"] * 8 + ["val"] * 6
    index, _ = build_store(table, recording_dir, tmp_path / "seg", 16000, 3.0, progress=False)
    tokenize_table(index, tmp_path / "tok", "train", 300, 16)
    tokens, store = PackedTokens(tmp_path / "tok"), SegmentStore.open(tmp_path / "seg")
    ex = examples_table(store.index, tokens.index, None)
    assert ex.audio_rows.iloc[2].tolist() == [2, 1, 0] and ex.audio_rows.iloc[8].tolist() == [8, -1, -1]
    return (RawExamples(ex[ex.split == "train"], tokens, store), RawExamples(ex[ex.split == "val"], tokens, store),
            len(tokens.tokenizer()))


def model_for(vocab):
    torch.manual_seed(0)
    text = {"vocab_size": vocab, "n_layer": 1, "n_embd": 16, "n_head": 2, "n_positions": 32}
    return TurnFusionModel(TurnFusionConfig(mode="fusion", text_config=text, audio_config=AUDIO_CFG, hidden_size=16))


def encoder_weights(model):
    return {k: v.clone() for k, v in model.state_dict().items() if "encoder" in k}


def changed(before, model):
    after = model.state_dict()
    return any(not torch.equal(v, after[k]) for k, v in before.items())


def test_full_and_gradual_fine_tuning_update_the_encoders(recording_dir, tmp_path):
    train_set, val_set, vocab = raw_sets(recording_dir, tmp_path)
    for schedule, epochs, expect_change in [("full", 1, True), ("gradual", 2, True), ("gradual", 1, False)]:
        model = model_for(vocab)
        before = encoder_weights(model)
        cfg = TrainConfig(epochs=epochs, batch_size=4, lr_encoder=1e-3, warmup_steps=1, encoders=schedule,
                          unfreeze_epoch=1, device="cpu")
        train(model, train_set, val_set, cfg, tmp_path / schedule, tmp_path / "ck", progress=False)
        assert changed(before, model) == expect_change, (schedule, epochs)
    probs = predict(model, val_set, cfg, torch.device("cpu"))
    assert probs.shape == (6, 3) and abs(probs.sum(1) - 1).max() < 1e-5

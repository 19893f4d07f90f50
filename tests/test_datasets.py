import numpy as np
import pandas as pd
import pipeline
import pytest
import torch
from conftest import dies_while_validating, params_config, toy_config, utterance_table
from pipeline import AUDIO_CFG

from turnfusion.config import SegmentConfig, TextConfig, TrainConfig
from turnfusion.data.segment import build_store
from turnfusion.data.stores import EmbeddingCache, PackedTokens, SegmentStore
from turnfusion.data.tokenize import tokenize_table
from turnfusion.models import TurnFusionModel
from turnfusion.training.datasets import (
    CachedExamples,
    RawExamples,
    TextTrainingExamples,
    collate_cached,
    collate_raw,
    collate_text_training,
)
from turnfusion.training.datasets import utterance_table as examples_table
from turnfusion.training.loop import predict
from turnfusion.training.schedules import EncoderSchedule
from turnfusion.training.train import train


def raw_sets(recording_dir, tmp_path):
    rows = [("v1", f"v1_{i}", f"word{i % 3} and so", i % 3, 0.5 * i, 0.5 * i + 0.5, i % 2) for i in range(8)]
    rows += [("v2", f"v2_{i}", "yes right", i % 3, 0.5 * i, 0.5 * i + 0.5, 0) for i in range(6)]
    table = utterance_table(rows)
    table["split"] = ["train"] * 8 + ["val"] * 6
    segment = SegmentConfig(16000, 3.0, "mix", False, 0.5, "keep")
    index, _ = build_store(table, recording_dir, tmp_path / "seg", segment, progress=False)
    tokenize_table(index, tmp_path / "tok", params_config(TextConfig, vocab_size=300, max_length=16))
    tokens, store = PackedTokens(tmp_path / "tok"), SegmentStore.open(tmp_path / "seg")
    ex = examples_table(store.index, tokens.index, None, n_audio_segments=3)
    assert ex.audio_rows.iloc[2].tolist() == [2, 1, 0] and ex.audio_rows.iloc[8].tolist() == [8, -1, -1]
    return (RawExamples(ex[ex.split == "train"], tokens, store), RawExamples(ex[ex.split == "val"], tokens, store),
            len(tokens.tokenizer()))


def model_for(vocab):
    torch.manual_seed(0)
    text = {"vocab_size": vocab, "n_layer": 1, "n_embd": 16, "n_head": 2, "n_positions": 32}
    return TurnFusionModel(toy_config("fusion", text, AUDIO_CFG, hidden_size=16))


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
        cfg = params_config(TrainConfig, epochs=epochs, batch_size=4, lr_encoder=1e-3, warmup_steps=1,
                            encoders=schedule, unfreeze_epoch=1, device="cpu")
        state = train(model, train_set, val_set, cfg, tmp_path / schedule, tmp_path / "ck", progress=False)
        # the model ends with its best epoch's weights: unfrozen encoders changed only if that epoch trained them
        trained_them = expect_change and (schedule == "full" or state["best_epoch"] > cfg.unfreeze_epoch)
        assert changed(before, model) == trained_them, (schedule, epochs, state["best_epoch"])
    probs = predict(model, val_set, cfg.batch_size, torch.device("cpu"), EncoderSchedule.of(cfg).inputs.collate)
    assert probs.shape == (6, 3)


def test_a_gradual_run_interrupted_after_the_unfreeze_resumes_as_if_it_had_not_stopped(recording_dir, tmp_path,
                                                                                     monkeypatch):
    """Resuming restores the encoders' parameter group and its learning-rate schedule (before the refactor a
    resumed gradual run failed on its first step: the schedule had one group, the saved state two)."""
    train_set, val_set, vocab = raw_sets(recording_dir, tmp_path)
    cfg = params_config(TrainConfig, epochs=4, batch_size=4, lr_encoder=1e-3, warmup_steps=1, encoders="gradual",
                        unfreeze_epoch=1, device="cpu", patience=10)
    full = train(model_for(vocab), train_set, val_set, cfg, tmp_path / "a", tmp_path / "cka", progress=False)
    with dies_while_validating(monkeypatch, epoch=3):  # two epochs after the unfreeze
        train(model_for(vocab), train_set, val_set, cfg, tmp_path / "b", tmp_path / "ckb", progress=False)
    resumed = train(model_for(vocab), train_set, val_set, cfg, tmp_path / "b", tmp_path / "ckb", progress=False)
    assert [h["epoch"] for h in resumed["history"]] == [1, 2, 3, 4]
    for got, want in zip(resumed["history"], full["history"], strict=True):
        assert got == pytest.approx(want, abs=1e-5)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return pipeline.build(tmp_path_factory.mktemp("pipeline"), n_previous=1, audio_segments=3)


def test_utterance_table_links_each_row_to_its_history_in_its_conversation(tiny):
    table = tiny.table
    assert len(table) == len(tiny.store.index) == len(tiny.tokens.index)
    overlapped = 0
    for _, row in table.iterrows():
        ended = table[(table.video_id == row.video_id) & (table.end <= row.start)].sort_values(["end", "start"])
        want = ([row.segment_row] + ended.segment_row.tolist()[::-1] + [-1, -1, -1])[:3]  # current, last ended, ...
        assert row.audio_rows.tolist() == want
        same = table.video_id == row.video_id
        overlapped += int((same & (table.start < row.start) & (table.end > row.start)).any())
    assert overlapped > 0  # the fixture has rows that started before and overlap: never a predecessor


def test_excluded_rows_are_history_for_others_but_never_examples():
    from turnfusion.training.datasets import utterance_table

    segments = pd.DataFrame({"sentence_id": ["a", "b", "c"], "video_id": "v", "position": [0, 1, 2],
                             "start": [0.0, 0.0, 2.0], "end": [1.0, 1.0, 3.0], "label": [0, 1, 1],
                             "excluded": [True, True, False]})
    tokens = pd.DataFrame({"sentence_id": ["a", "b", "c"], "tok_offset": [0, 2, 4], "tok_length": [2, 2, 2]})
    table = utterance_table(segments, tokens, None, n_audio_segments=3)
    assert table.sentence_id.tolist() == ["c"]
    assert table.audio_rows[0].tolist() == [2, 1, 0]  # its history: the two excluded windows, last ended first


def test_cached_and_raw_examples_carry_the_same_utterance(tiny):
    cached = CachedExamples(tiny.table, EmbeddingCache(tiny.cache))
    raw = RawExamples(tiny.table, tiny.tokens, tiny.store)
    item_c, item_r = cached[3], raw[3]
    assert len(item_c["text"]) == len(item_r["ids"]) == tiny.table.tok_length[3]
    assert [a is None for a in item_c["audio"]] == [a is None for a in item_r["audio"]]
    assert np.array_equal(item_r["audio"][0], tiny.store.waveform(int(tiny.table.segment_row[3])))
    assert item_c["label"] == item_r["label"] == tiny.table.label[3]


def test_collate_pads_with_masks_that_mark_only_real_positions(tiny):
    cached = CachedExamples(tiny.table, EmbeddingCache(tiny.cache))
    items = [cached[i] for i in (0, 1, 5)]  # first utterance: no predecessors
    batch = collate_cached(items)
    assert batch["text_mask"].sum(1).tolist() == [len(it["text"]) for it in items]
    for k, it in enumerate(items):
        for j, frames in enumerate(it["audio"]):
            n = 0 if frames is None else len(frames)
            assert batch["audio_mask"][k, j].sum().item() == n
            assert torch.equal(batch["audio_hidden"][k, j, :n], frames if n else batch["audio_hidden"][k, j, :0])
            assert (batch["audio_hidden"][k, j, n:] == 0).all()
    raw = collate_raw([RawExamples(tiny.table, tiny.tokens, tiny.store)[i] for i in (0, 1)])
    assert raw["attention_mask"].sum(1).tolist() == tiny.table.tok_length[:2].tolist()
    assert raw["waves"][0][1] is None and raw["waves"][1][1] is not None


def test_text_training_batches_give_the_logits_of_cached_and_raw_ones(tiny):
    """Token ids with the cached audio: the text through the encoder, the audio as cached; a bug that drops
    the cached audio, or encodes the wrong row, changes the logits."""
    model = TurnFusionModel.from_pretrained(str(tiny.model_dir)).eval()
    rows = [0, 3, 7, 12]
    batches = [collate_cached([CachedExamples(tiny.table, EmbeddingCache(tiny.cache))[i] for i in rows]),
               collate_text_training([TextTrainingExamples(tiny.table, EmbeddingCache(tiny.cache), tiny.tokens)[i]
                                      for i in rows]),
               collate_raw([RawExamples(tiny.table, tiny.tokens, tiny.store)[i] for i in rows])]
    assert "waves" not in batches[1] and "text_hidden" not in batches[1]
    with torch.no_grad():
        cached, text_training, raw = (model.batch_logits(b) for b in batches)
    assert torch.allclose(text_training, cached, atol=1e-2)  # the cache is float16
    assert torch.allclose(text_training, raw, atol=1e-2)
    shuffled = dict(batches[1], audio_hidden=batches[1]["audio_hidden"].flip(0))
    with torch.no_grad():
        assert not torch.allclose(model.batch_logits(shuffled), text_training, atol=1e-2)


def test_a_model_without_audio_gets_batches_without_it_and_the_same_logits(tiny):
    from turnfusion.training.datasets import Inputs

    fusion = TurnFusionModel.from_pretrained(str(tiny.model_dir))
    text_only = TurnFusionModel(fusion.config.__class__(**{**fusion.config.to_dict(), "mode": "text"})).eval()
    text_only.text_encoder.load_state_dict(fusion.text_encoder.state_dict())
    rows = [0, 3, 7, 12]
    for kind in (Inputs(cached_text=False, cached_audio=True), Inputs(cached_text=True, cached_audio=True)):
        examples = kind.examples(tiny.table, tiny.cache, tiny.tokens, tiny.store, text_only)
        batch = kind.collate([examples[i] for i in rows])
        assert "audio" not in examples[0] and "audio_hidden" not in batch  # the cache's audio is not read
        with_audio = kind.collate([kind.examples(tiny.table, tiny.cache, tiny.tokens, tiny.store, fusion)[i]
                                   for i in rows])
        assert "audio_hidden" in with_audio and torch.equal(batch["label"], with_audio["label"])
        with torch.no_grad():
            assert torch.equal(text_only.batch_logits(batch), text_only.batch_logits(with_audio))


def test_the_text_schedule_trains_the_text_encoder_and_leaves_the_audio_one(tiny, tmp_path):
    model = TurnFusionModel.from_pretrained(str(tiny.model_dir))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    examples = TextTrainingExamples(tiny.table, EmbeddingCache(tiny.cache), tiny.tokens)
    cfg = params_config(TrainConfig, epochs=1, batch_size=4, lr_encoder=1e-2, warmup_steps=1, encoders="text",
                        device="cpu", patience=5)
    train(model, examples, examples, cfg, tmp_path / "m", tmp_path / "ck", progress=False)
    after = model.state_dict()
    moved = {k.split(".")[0] for k, v in before.items() if not torch.equal(v, after[k])}
    assert moved == {"text_encoder", "head"}

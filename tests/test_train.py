import numpy as np
import pytest
import torch
from conftest import dies_while_validating
from toy import ToyCached, toy_model, train_cfg

from turnfusion.config import ParamsError
from turnfusion.models import TurnFusionModel
from turnfusion.schema import DataError
from turnfusion.training.datasets import collate_cached
from turnfusion.training.distributed import Processes
from turnfusion.training.train import check_batch_split, class_alpha, epoch_batches, micro_batches, train


def test_weighted_batches_draw_classes_in_balance():
    labels = np.array([0] * 800 + [1] * 150 + [2] * 50)
    batches = epoch_batches(labels, "weighted", 64, torch.Generator().manual_seed(0))
    assert batches.shape == (16, 64)  # ceil(1000 / 64) full batches
    drawn = np.bincount(labels[batches.ravel()], minlength=3) / batches.size
    assert np.allclose(drawn, 1 / 3, atol=0.05)


def test_shuffled_batches_take_each_example_once_and_fill_the_last_batch():
    labels = np.array([0] * 600 + [1] * 90 + [2] * 30)
    batches = epoch_batches(labels, "shuffle", 64, torch.Generator().manual_seed(0))
    assert batches.shape == (12, 64)
    rows = batches.ravel()
    assert sorted(set(rows.tolist())) == list(range(720))  # every example
    assert np.array_equal(rows[720:], rows[: 768 - 720])  # the last batch filled up from the start


def test_an_epochs_batches_depend_on_the_generator_only():
    labels = np.array([0] * 50 + [1] * 20 + [2] * 10)
    a, b, c = (epoch_batches(labels, "weighted", 16, torch.Generator().manual_seed(s)) for s in (3, 3, 4))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


@pytest.mark.parametrize("world,accumulation", [(1, 1), (2, 1), (1, 4), (2, 2)])
def test_micro_batches_split_every_global_batch_exactly_once(world, accumulation):
    batches = np.arange(5 * 8).reshape(5, 8)
    shares = [micro_batches(batches, Processes(r, world, torch.device("cpu")), accumulation) for r in range(world)]
    for step in range(5):
        pieces = [piece for share in shares for piece in share[step]]
        assert len(pieces) == world * accumulation and {len(p) for p in pieces} == {8 // (world * accumulation)}
        assert sorted(sum(pieces, [])) == batches[step].tolist()  # the whole global batch, nothing twice


def test_a_batch_that_does_not_split_evenly_is_a_param_error():
    with pytest.raises(DataError, match=r"train.batch_size 30 must be a multiple of .*\(4\) times "
                                        r"train.grad_accumulation \(2\)"):
        check_batch_split(train_cfg(batch_size=30, grad_accumulation=2), world=4)
    check_batch_split(train_cfg(batch_size=32, grad_accumulation=2), world=4)


def test_class_alpha_given_uniform_or_inverse_frequency():
    labels = np.array([0, 0, 0, 0, 0, 0, 1, 1, 2])
    assert class_alpha(train_cfg(focal_alpha=[2.0, 1.0, 0.5]), labels, 3).tolist() == [2.0, 1.0, 0.5]
    assert class_alpha(train_cfg(sampler="weighted"), labels, 3).tolist() == [1.0, 1.0, 1.0]
    alpha = class_alpha(train_cfg(sampler="shuffle"), labels, 3)
    assert alpha.mean().item() == pytest.approx(1.0) and alpha[0] < alpha[1] < alpha[2]
    assert (alpha[2] / alpha[0]).item() == pytest.approx(6.0)  # counts 6 : 1


@pytest.mark.parametrize("head", ["concat", "gated", "tensor", "experts", "experts_concat"])
def test_short_training_learns_a_separable_set(tmp_path, head):
    model = toy_model(head=head)
    cfg = train_cfg(epochs=6, batch_size=16, lr_head=3e-3, warmup_steps=1, patience=10)
    state = train(model, ToyCached(192, 0), ToyCached(96, 1), cfg, tmp_path / "m", tmp_path / "ck", progress=False)
    assert state["best"] > 0.9
    assert not (tmp_path / "ck").exists()  # the checkpoint goes when training ends


@pytest.mark.parametrize("mode", ["text", "audio"])
def test_single_modality_models_from_the_same_code_path(tmp_path, mode):
    model = toy_model(mode=mode)
    assert hasattr(model, "text_encoder") == (mode == "text") and hasattr(model, "audio_encoder") == (mode == "audio")
    cfg = train_cfg(epochs=4, batch_size=16, lr_head=3e-3, warmup_steps=1, patience=10)
    assert train(model, ToyCached(192, 0), ToyCached(96, 1), cfg, tmp_path / "m", tmp_path / "ck",
                 progress=False)["best"] > 0.8


def test_save_and_load_give_identical_logits(tmp_path):
    model = toy_model(head="tensor", use_trp=True).eval()
    batch = collate_cached([ToyCached(8, 2)[i] for i in range(8)])
    args = (batch["text_hidden"], batch["text_mask"], batch["audio_hidden"], batch["audio_mask"], batch["trp"])
    model.save_pretrained(tmp_path)
    loaded = TurnFusionModel.from_pretrained(tmp_path).eval()
    assert loaded.config.fusion_head == "tensor" and loaded.config.use_trp
    with torch.no_grad():
        assert torch.equal(model(*args), loaded(*args))


@pytest.mark.parametrize("ema_decay", [0.0, 0.9])
def test_resume_continues_from_the_saved_epoch(tmp_path, monkeypatch, ema_decay):
    cfg = train_cfg(epochs=4, batch_size=16, lr_head=3e-3, warmup_steps=1, patience=10, ema_decay=ema_decay)
    full = train(toy_model(), ToyCached(64, 0), ToyCached(32, 1), cfg, tmp_path / "a", tmp_path / "cka",
                 progress=False)

    with dies_while_validating(monkeypatch, epoch=3):
        train(toy_model(), ToyCached(64, 0), ToyCached(32, 1), cfg, tmp_path / "b", tmp_path / "ckb", progress=False)
    assert torch.load(tmp_path / "ckb" / "last.pt", weights_only=True)["state"]["epoch"] == 2
    resumed = train(toy_model(), ToyCached(64, 0), ToyCached(32, 1), cfg, tmp_path / "b", tmp_path / "ckb",
                    progress=False)
    assert [h["epoch"] for h in resumed["history"]] == [1, 2, 3, 4]
    for got, want in zip(resumed["history"], full["history"], strict=True):
        assert got == pytest.approx(want)


def test_a_moving_average_is_what_val_scores_and_training_keeps(tmp_path):
    def head_shift(ema_decay):  # how far the saved head is from the untrained one
        model = toy_model()
        start = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("head.")}
        cfg = train_cfg(epochs=2, batch_size=16, lr_head=3e-3, warmup_steps=1, patience=10, ema_decay=ema_decay)
        state = train(model, ToyCached(64, 0), ToyCached(32, 1), cfg, tmp_path / str(ema_decay),
                      tmp_path / "ck", progress=False)
        saved = TurnFusionModel.from_pretrained(tmp_path / str(ema_decay)).state_dict()
        return sum((saved[k] - v).norm().item() for k, v in start.items()), state["history"]

    raw, raw_history = head_shift(0.0)
    slow, slow_history = head_shift(0.999)  # barely leaves the weights of the first step
    assert slow < raw / 4
    assert slow_history[-1]["val_macro_f1"] != raw_history[-1]["val_macro_f1"]  # val scored the average


def test_ema_decay_outside_zero_to_one_is_a_param_error():
    with pytest.raises(ParamsError, match=r"train.ema_decay must be >= 0 and < 1, got 1.0"):
        train_cfg(ema_decay=1.0)


def test_frozen_mode_does_not_change_encoder_weights(tmp_path):
    model = toy_model()
    before = {k: v.clone() for k, v in model.state_dict().items() if "encoder" in k}
    cfg = train_cfg(epochs=2, batch_size=16, lr_head=3e-3, warmup_steps=1, encoders="frozen")
    train(model, ToyCached(64, 0), ToyCached(32, 1), cfg, tmp_path / "m", tmp_path / "ck", progress=False)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert any(not torch.equal(v, after[k]) for k, v in toy_model().state_dict().items() if "head" in k)


def test_modality_dropout_drops_one_modality_never_both():
    model = toy_model(modality_dropout=1.0).train()
    parts = [torch.ones(500, 4), torch.ones(500, 6)]
    dropped = model._modality_dropout(parts)
    text_off, audio_off = (dropped[0].sum(1) == 0), (dropped[1].sum(1) == 0)
    assert not (text_off & audio_off).any() and text_off.any() and audio_off.any()

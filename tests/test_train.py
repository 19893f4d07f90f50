import numpy as np
import pandas as pd
import pytest
import torch
from conftest import params_config
from pipeline import AUDIO_CFG

from turnfusion.config import TrainConfig
from turnfusion.datasets import collate_cached
from turnfusion.models import TurnFusionConfig, TurnFusionModel
from turnfusion.train import class_alpha, class_balanced_sampler, make_loader, train

TEXT_CFG = {"vocab_size": 50, "n_layer": 1, "n_embd": 16, "n_head": 2, "n_positions": 32}


class ToyCached(torch.utils.data.Dataset):
    """Cached-format examples whose label is readable from the text (class k: dimension k high) and
    from the audio (last frames: dimension k high), with variable lengths and padding."""

    def __init__(self, n: int, seed: int, noise: float = 0.5):
        rng = np.random.default_rng(seed)
        self.table = pd.DataFrame({"label": rng.integers(0, 3, n)})
        self.items = []
        for label in self.table.label:
            t = rng.normal(0, noise, (rng.integers(3, 9), 16)).astype(np.float32)
            t[-1, label] += 2.0
            audio = []
            for _ in range(3):
                a = rng.normal(0, noise, (rng.integers(5, 15), 16)).astype(np.float32)
                a[-3:, 3 + label] += 2.0
                audio.append(torch.from_numpy(a))
            self.items.append({"text": torch.from_numpy(t), "audio": audio, "trp": 0.5, "label": int(label)})

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def train_cfg(**overrides) -> TrainConfig:
    return params_config(TrainConfig, **{"device": "cpu", **overrides})


def toy_model(mode="fusion", head="concat", **kw):
    torch.manual_seed(0)
    return TurnFusionModel(TurnFusionConfig(mode=mode, text_config=TEXT_CFG, audio_config=AUDIO_CFG,
                                            fusion_head=head, hidden_size=32, **kw))


def test_weighted_sampler_draws_classes_in_balance():
    labels = np.array([0] * 800 + [1] * 150 + [2] * 50)
    sampler = class_balanced_sampler(labels, torch.Generator().manual_seed(0))
    drawn = np.bincount(labels[list(sampler)], minlength=3) / len(labels)
    assert np.allclose(drawn, 1 / 3, atol=0.05)


class Labelled(torch.utils.data.Dataset):
    def __init__(self, labels):
        self.table = pd.DataFrame({"label": labels})

    def __len__(self):
        return len(self.table)

    def __getitem__(self, i):
        return {"text": torch.zeros(1, 2), "audio": [None], "trp": 0.0, "label": int(self.table.label[i])}


def test_the_training_loader_uses_the_sampler_the_config_names():
    data = Labelled([0] * 600 + [1] * 90 + [2] * 30)
    drawn = {}
    for sampler in ("weighted", "shuffle"):
        loader = make_loader(data, train_cfg(sampler=sampler, batch_size=64), shuffle=True,
                             generator=torch.Generator().manual_seed(0))
        drawn[sampler] = np.bincount(torch.cat([b["label"] for b in loader]).numpy(), minlength=3)
    assert np.allclose(drawn["weighted"] / len(data), 1 / 3, atol=0.06)  # class-balanced, with replacement
    assert drawn["shuffle"].tolist() == [600, 90, 30]  # each example once
    in_order = make_loader(data, train_cfg(sampler="weighted"), shuffle=False)  # evaluation: no sampling
    assert torch.cat([b["label"] for b in in_order]).tolist() == data.table.label.tolist()


def test_class_alpha_given_uniform_or_inverse_frequency():
    labels = np.array([0, 0, 0, 0, 0, 0, 1, 1, 2])
    assert class_alpha(train_cfg(focal_alpha=[2.0, 1.0, 0.5]), labels, 3).tolist() == [2.0, 1.0, 0.5]
    assert class_alpha(train_cfg(sampler="weighted"), labels, 3).tolist() == [1.0, 1.0, 1.0]
    alpha = class_alpha(train_cfg(sampler="shuffle"), labels, 3)
    assert alpha.mean().item() == pytest.approx(1.0) and alpha[0] < alpha[1] < alpha[2]
    assert (alpha[2] / alpha[0]).item() == pytest.approx(6.0)  # counts 6 : 1


@pytest.mark.parametrize("head", ["concat", "gated", "tensor"])
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


def test_resume_continues_from_the_saved_epoch(tmp_path, monkeypatch):
    import turnfusion.train as training

    cfg = train_cfg(epochs=4, batch_size=16, lr_head=3e-3, warmup_steps=1, patience=10)
    full = train(toy_model(), ToyCached(64, 0), ToyCached(32, 1), cfg, tmp_path / "a", tmp_path / "cka",
                 progress=False)

    calls = {"n": 0}
    real_predict = training.predict

    def interrupted(*args, **kwargs):  # the run dies while validating epoch 3
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_predict(*args, **kwargs)

    monkeypatch.setattr(training, "predict", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(toy_model(), ToyCached(64, 0), ToyCached(32, 1), cfg, tmp_path / "b", tmp_path / "ckb", progress=False)
    assert torch.load(tmp_path / "ckb" / "last.pt", weights_only=False)["state"]["epoch"] == 2
    monkeypatch.setattr(training, "predict", real_predict)
    resumed = train(toy_model(), ToyCached(64, 0), ToyCached(32, 1), cfg, tmp_path / "b", tmp_path / "ckb",
                    progress=False)
    assert [h["epoch"] for h in resumed["history"]] == [1, 2, 3, 4]
    for got, want in zip(resumed["history"], full["history"], strict=True):
        assert got == pytest.approx(want)


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

"""A toy training set whose label can be read from both modalities, a small model and a training config: for
the training loop's tests, in one process (test_train.py) and in several (distributed_job.py)."""

import numpy as np
import pandas as pd
import torch
from conftest import params_config, toy_config
from pipeline import AUDIO_CFG

from turnfusion.config import TrainConfig
from turnfusion.models import TurnFusionModel

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
    """The shipped train params for the toy's cached hidden states: frozen encoders (nothing to encode), and no
    moving average (a few dozen steps would leave it near the initial weights)."""
    return params_config(TrainConfig, **{"device": "cpu", "encoders": "frozen", "ema_decay": 0.0, **overrides})


def toy_model(mode="fusion", head="concat", **kw):
    torch.manual_seed(0)
    return TurnFusionModel(toy_config(mode, TEXT_CFG, AUDIO_CFG, fusion_head=head, hidden_size=32, **kw))

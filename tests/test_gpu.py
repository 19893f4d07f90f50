"""Checks for a CUDA machine (`bash bench/gpu_check.sh` runs them; skipped without CUDA): bf16 training, the
embedding cache on a GPU against the CPU's, and DistributedDataParallel over every visible GPU (NCCL)."""

import numpy as np
import pytest
import torch
from pipeline import build
from test_distributed import assert_same_history, history, launch
from toy import ToyCached, toy_model, train_cfg

from turnfusion.config import EmbedConfig, ModelConfig
from turnfusion.data.stores import AUDIO_CACHE, TEXT_CACHE, PackedTokens, SegmentStore
from turnfusion.training.embed import embed
from turnfusion.training.loop import autocast
from turnfusion.training.train import train

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")]


def test_bf16_autocast_on_cuda_and_the_toy_set_is_learnt(tmp_path):
    model = toy_model().cuda().eval()
    batch = {"text_hidden": torch.randn(2, 4, 16), "text_mask": torch.ones(2, 4, dtype=torch.bool),
             "audio_hidden": torch.randn(2, 3, 5, 16), "audio_mask": torch.ones(2, 3, 5, dtype=torch.bool)}
    with autocast(torch.device("cuda"), "bf16"):
        assert model.batch_logits(batch).dtype == torch.bfloat16
    with autocast(torch.device("cuda"), "fp32"):
        assert model.batch_logits(batch).dtype == torch.float32
    cfg = train_cfg(epochs=6, batch_size=16, lr_head=3e-3, warmup_steps=1, patience=10, device="cuda")
    state = train(toy_model(), ToyCached(192, 0), ToyCached(96, 1), cfg, tmp_path / "m", tmp_path / "ck",
                  progress=False, precision="bf16")
    assert state["best"] > 0.9 and all(np.isfinite(h["train_loss"]) for h in state["history"])


def test_the_cache_made_on_a_gpu_matches_the_cpu_one(tmp_path):
    from conftest import params_config

    pipe = build(tmp_path / "p")  # its cache was made on the CPU
    root = pipe.root
    cfg = params_config(ModelConfig, text_encoder=str(root / "enc_text"), audio_encoder=str(root / "enc_audio"))
    embed(PackedTokens(root / "tokens"), SegmentStore.open(root / "segments"), tmp_path / "gpu", cfg, 12,
          root / "no_teacher", root / "no_pretrained", params_config(EmbedConfig, device="cuda"), "fp32")
    for name in (TEXT_CACHE, AUDIO_CACHE):
        cpu, gpu = (np.load(d / name).astype(np.float32) for d in (pipe.cache, tmp_path / "gpu"))
        assert cpu.shape == gpu.shape
        assert np.abs(cpu - gpu).max() <= 2e-2 * max(1.0, np.abs(cpu).max())  # TF32 convolutions, float16 cache


@pytest.mark.skipif(torch.cuda.device_count() < 2 or 16 % torch.cuda.device_count() != 0,
                    reason="needs 2, 4, 8 or 16 GPUs")
def test_every_visible_gpu_trains_as_one_gpu_does(tmp_path):
    n = torch.cuda.device_count()
    for name, processes in (("one", 1), ("all", n)):
        done = launch("train", tmp_path / name, "--device", "cuda", processes=processes)
        assert done.returncode == 0, done.stderr[-2000:]
    (one, _), (all_, world) = history(tmp_path / "one"), history(tmp_path / "all")
    assert world == n
    assert_same_history(all_, one, 1e-2)  # GPU kernels sum in no fixed order

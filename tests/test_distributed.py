"""Several processes on this CPU (torchrun, gloo): the same training as one process, a killed run that
resumes, and an embedding cache that does not depend on how many processes made it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from pipeline import build

from turnfusion.data.stores import AUDIO_CACHE, AUDIO_INDEX, TEXT_CACHE
from turnfusion.schema import DataError
from turnfusion.training.distributed import Processes, processes

JOB = Path(__file__).with_name("distributed_job.py")


def launch(*args, processes: int = 2, threads: int | None = None) -> subprocess.CompletedProcess:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)} if threads else None
    return subprocess.run([*(launcher if processes > 1 else [sys.executable]), str(JOB), *map(str, args)],
                          capture_output=True, text=True, timeout=300, env=env)


def history(out: Path) -> tuple[list[dict], int]:
    saved = json.loads((out / "history.json").read_text())
    return saved["history"], saved["world"]


def assert_same_history(got: list[dict], want: list[dict], tolerance: float) -> None:
    assert [h["epoch"] for h in got] == [h["epoch"] for h in want]
    for a, b in zip(got, want, strict=True):
        assert max(abs(a[k] - b[k]) for k in a) <= tolerance, (a, b)


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    out = tmp_path_factory.mktemp("one")
    assert launch("train", out, processes=1).returncode == 0
    return history(out)[0]


def test_two_processes_train_as_one_does_with_the_same_global_batch(tmp_path, one_process):
    for name, extra in (("ddp", []), ("ddp_accumulated", ["--accumulation", "2"])):
        done = launch("train", tmp_path / name, *extra)
        assert done.returncode == 0, done.stderr[-2000:]
        got, world = history(tmp_path / name)
        assert world == 2
        # every logged figure (losses, val macro F1 ...) within 1e-4: only the order of float sums differs
        assert_same_history(got, one_process, 1e-4)
        assert (tmp_path / name / "model" / "config.json").exists() and not (tmp_path / name / "checkpoints").exists()


def test_a_killed_distributed_run_resumes_where_it_stopped(tmp_path, one_process):
    killed = launch("train", tmp_path, "--die-at-epoch", "3")
    assert killed.returncode != 0
    saved = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=False)
    assert saved["state"]["epoch"] == 2 and not (tmp_path / "history.json").exists()
    resumed = launch("train", tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming from" in resumed.stderr and "after epoch 2" in resumed.stderr
    assert_same_history(history(tmp_path)[0], one_process, 1e-4)


def test_the_embedding_cache_is_the_same_whatever_the_number_of_processes(tmp_path):
    root = build(tmp_path / "p").root
    for n in (1, 2):  # torchrun gives each process one thread; so does the one process here: a thread count
        # changes the float sums of convolutions (by up to one float16 step in the cache), processes do not
        done = launch("embed", root, tmp_path / f"cache{n}", processes=n, threads=1)
        assert done.returncode == 0, done.stderr[-2000:]
    one, two = tmp_path / "cache1", tmp_path / "cache2"
    for name in (TEXT_CACHE, AUDIO_CACHE, AUDIO_INDEX):
        assert (one / name).read_bytes() == (two / name).read_bytes(), name
    assert len(np.load(one / TEXT_CACHE)) > 0 and not list(two.glob(".*part*"))  # the parts are joined and gone
    ranks = [json.loads((tmp_path / f"cache2.rank{r}.json").read_text()) for r in range(2)]
    assert [r["world"] for r in ranks] == [2, 2] and ranks[0]["pid"] != ranks[1]["pid"]  # two processes took part
    assert not (tmp_path / "cache2.rank2.json").exists()


@pytest.mark.parametrize("n,unit", [(10, 1), (10, 3), (2, 4), (0, 1)])
def test_shares_are_contiguous_whole_units_and_cover_every_row_once(n, unit):
    for world in (1, 2, 3):
        shares = [Processes(r, world, torch.device("cpu")).share(n, unit) for r in range(world)]
        assert [i for s in shares for i in s] == list(range(n))
        assert all(s.start % unit == 0 for s in shares if len(s))


def test_one_gpu_named_for_several_processes_is_a_param_error(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(DataError, match=r"train.device is 'cuda:1', but 2 processes were launched"):
        processes("cuda:1", "train.device")


def test_one_process_needs_no_process_group(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    procs = processes("cpu")
    assert (procs.rank, procs.world, procs.main, procs.device.type) == (0, 1, True, "cpu")
    assert procs.gather("x") == ["x"] and procs.sum([1.0, 2.0]).tolist() == [1.0, 2.0]
    assert not torch.distributed.is_initialized()

import os
import subprocess
import sys

from conftest import REPO

from turnfusion.threads import limit_threads, thread_count, usable_cores


def test_the_usable_cores_are_the_smallest_of_affinity_cgroup_quota_and_slurm(tmp_path):
    affinity = len(os.sched_getaffinity(0))
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("max 100000\n")
    assert usable_cores(cpu_max, environ={}) == affinity
    cpu_max.write_text("50000 100000\n")  # half a core: one thread
    assert usable_cores(cpu_max, environ={}) == 1
    cpu_max.write_text("50000 0\n")  # not a quota: ignored
    assert usable_cores(cpu_max, environ={}) == affinity
    assert usable_cores(tmp_path / "absent", environ={"SLURM_CPUS_PER_TASK": "1"}) == 1
    assert usable_cores(tmp_path / "absent", environ={"SLURM_CPUS_PER_TASK": "4096"}) == affinity
    assert usable_cores(tmp_path / "absent", environ={"SLURM_CPUS_PER_TASK": "lots"}) == affinity


def test_a_request_beats_omp_num_threads_which_beats_the_cores():
    assert thread_count(3, environ={"OMP_NUM_THREADS": "5"}) == 3
    assert thread_count(None, environ={"OMP_NUM_THREADS": "5"}) == 5
    assert thread_count(None, environ={"SLURM_CPUS_PER_TASK": "1"}) == 1


def test_limit_threads_leaves_what_the_user_set(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("GOMP_SPINCOUNT", "infinity")
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    assert limit_threads() == 1
    assert (os.environ["GOMP_SPINCOUNT"], os.environ["MKL_NUM_THREADS"]) == ("infinity", "1")


def test_a_stage_s_torch_uses_the_cores_slurm_gave_it():
    code = ("import stages.common, torch, os; "
            "print(torch.get_num_threads(), os.environ['GOMP_SPINCOUNT'], os.environ['OMP_NUM_THREADS'])")
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "MKL_", "OPENBLAS_", "GOMP_"))}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True,
                         env={**environ, "SLURM_CPUS_PER_TASK": "1"}).stdout.split()
    assert out == ["1", "1000", "1"]

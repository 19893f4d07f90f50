# SPDX-License-Identifier: Apache-2.0
"""How many threads a process uses: the cores it was given, not the cores the machine has.

torch, its BLAS and onnxruntime each size their pools to every visible core and, by default, spin while they wait.
Two such processes on two cores do not run at half speed each, they collapse (`bench/contention.py`, a teacher-size
training loop beside a copy of itself on 2 cores: 3.8 times slower than alone with torch's defaults, 1.7 times with
these settings). So every stage takes its thread count from here, and the ONNX predictor its default:

- `usable_cores()`: the smallest of the process's CPU affinity (`os.sched_getaffinity`: taskset, SLURM's binding),
  its cgroup's CPU quota (`cpu.max`: containers, SLURM's cgroup plugin) and `SLURM_CPUS_PER_TASK`;
- `thread_count(requested)`: `requested` when given, else `OMP_NUM_THREADS` when set, else `usable_cores()`;
- `limit_threads()`: exports that count (OMP_NUM_THREADS, MKL_NUM_THREADS, OPENBLAS_NUM_THREADS) and lets OpenMP
  threads spin only briefly before they sleep (GOMP_SPINCOUNT=1000, KMP_BLOCKTIME=1), where the user has not set
  them; `stages/common.py` calls it before any stage imports torch. `bench/contention.py` measures the policies.

The count is a property of the machine, not of an experiment, so it is no DVC param (changing it would re-run
stages whose results it does not change beyond their last bits): OMP_NUM_THREADS overrides it, as on any cluster.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")  # cgroup v2: "<quota> <period>" or "max <period>"


def usable_cores(cpu_max: Path = CGROUP_CPU_MAX, environ: dict | None = None) -> int:
    """The cores this process may use (at least 1)."""
    environ = os.environ if environ is None else environ
    limits = [len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)]
    try:
        quota, period = cpu_max.read_text().split()[:2]
        if quota != "max":
            limits.append(max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError, ZeroDivisionError):
        pass  # no cgroup v2 quota here (or a file that is not one)
    slurm = environ.get("SLURM_CPUS_PER_TASK", "")
    if slurm.isdigit() and int(slurm) > 0:
        limits.append(int(slurm))
    return max(1, min(limits))


def thread_count(requested: int | None = None, environ: dict | None = None) -> int:
    """Threads for one process's compute pools: `requested`, else OMP_NUM_THREADS, else the usable cores."""
    environ = os.environ if environ is None else environ
    if requested:
        return int(requested)
    omp = environ.get("OMP_NUM_THREADS", "")
    if omp.isdigit() and int(omp) > 0:
        return int(omp)
    return usable_cores(environ=environ)


def limit_threads(requested: int | None = None) -> int:
    """Size this process's compute pools to `thread_count(requested)` and let their threads spin only briefly; returns
    the count. Effective for torch's and the BLAS's pools when called before torch is imported (the OpenMP runtime
    reads its variables once, when torch loads it); torch's pool is resized if it is already loaded.
    The variables are only set where the user has not set them, and are inherited by child processes."""
    count = thread_count(requested)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(name, str(count))
    # spin briefly, then sleep: libgomp (torch's Linux wheels) spins 300,000 times by default and Intel's OpenMP
    # 200 ms, which on shared cores takes the time the others need; fully passive waits cost ~15 % alone
    os.environ.setdefault("GOMP_SPINCOUNT", "1000")
    os.environ.setdefault("KMP_BLOCKTIME", "1")
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(count)
    return count

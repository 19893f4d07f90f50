"""Several processes, on one machine or several: what the training loop and the embed stage need of them.

Launching is left to the engines made for it (`torchrun`, `accelerate launch`, `srun torchrun` on SLURM; the
`compute.launcher` param puts one in front of the `train` and `embed` commands). Hugging Face Accelerate's
`PartialState` reads what the launcher set (ranks, world size, rendezvous), starts the process group (NCCL on
GPUs, gloo on CPUs) and gives each process its device. This module adds only the pieces the pipeline needs on
top: this process's contiguous share of some rows, gathering shares back in rank order, a sum across
processes, and a barrier. Launched as one process (no WORLD_SIZE > 1 in the environment), nothing is set up
and every share is the whole.
"""

from __future__ import annotations

import atexit
import functools
import os
from dataclasses import dataclass

import numpy as np
import torch

from turnfusion.errors import DataError
from turnfusion.training.loop import pick_device


@dataclass(frozen=True)
class Processes:
    rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:
        """The process that writes models, checkpoints, logs and reports."""
        return self.rank == 0

    def share(self, n: int, unit: int = 1) -> range:
        """This process's contiguous share of `n` rows, in whole units of `unit` rows (e.g. batches, so that every
        batch is the one a single process would have made)."""
        units = -(-n // unit)
        first, last = (units * r // self.world for r in (self.rank, self.rank + 1))
        return range(min(n, first * unit), min(n, last * unit))

    def gather(self, item) -> list:
        """`item` of every process, in rank order."""
        if self.world == 1:
            return [item]
        from accelerate.utils import gather_object

        return gather_object([item])

    def sum(self, values) -> np.ndarray:
        """Element-wise sum of `values` over the processes."""
        total = torch.as_tensor(np.asarray(values, dtype=np.float64))
        if self.world > 1:
            torch.distributed.all_reduce(total)
        return total.numpy()

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()


def launched_world() -> int:
    """How many processes the launcher started (torchrun and accelerate launch both set WORLD_SIZE)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def processes(device: str, param: str = "device") -> Processes:
    """This process's place among the launched processes, and its device. One process: `device` as given
    (auto: CUDA when present). Several: Accelerate's choice for this rank (its local GPU, or the CPU with gloo
    when `device` is cpu or no GPU is present); naming one GPU (cuda:N) is then an error."""
    if launched_world() == 1:
        return Processes(0, 1, pick_device(device))
    if device not in ("auto", "cpu", "cuda"):
        raise DataError(f"params.yaml: {param} is {device!r}, but {launched_world()} processes were launched: "
                        f"use auto, cuda or cpu (each process takes its own local GPU)")
    state = _accelerate_state(cpu=device == "cpu" or not torch.cuda.is_available())
    device = state.device if state.device.type == "cuda" else torch.device("cpu")  # not Accelerate's "cpu:0"
    return Processes(state.process_index, state.num_processes, device)


@functools.cache
def _accelerate_state(cpu: bool):
    from accelerate import PartialState

    state = PartialState(cpu=cpu)
    atexit.register(state.destroy_process_group)  # without it gloo aborts the process at exit
    return state

import os

import pytest
import torch

from turnfusion.errors import DataError
from turnfusion.training.forked import run_forked


def test_each_task_runs_in_a_process_of_its_own_with_one_thread_and_the_results_come_in_order():
    threads = torch.get_num_threads()
    results = run_forked([lambda k=k: (k, os.getpid(), torch.get_num_threads(), os.environ["OMP_NUM_THREADS"])
                          for k in range(3)])
    assert [r[0] for r in results] == [0, 1, 2]
    assert len({r[1] for r in results} | {os.getpid()}) == 4
    assert all(r[2] == 1 and r[3] == "1" for r in results)
    assert torch.get_num_threads() == threads  # the parent keeps its own


def test_a_failing_task_or_a_dying_process_is_one_line():
    def fails():
        raise ValueError("segment 7 is not audio")

    with pytest.raises(DataError, match=r"^ValueError: segment 7 is not audio$"):
        run_forked([lambda: 1, fails])
    with pytest.raises(DataError, match=r"^a worker process ended with exit code 3$"):
        run_forked([lambda: os._exit(3), lambda: 2])

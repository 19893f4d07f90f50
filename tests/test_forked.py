import multiprocessing
import os
import time

import pytest
import torch

from turnfusion.errors import DataError
from turnfusion.training.forked import run_forked


def test_each_task_runs_in_a_process_of_its_own_with_its_threads_and_the_results_come_in_order():
    threads = torch.get_num_threads()
    results = run_forked([lambda k=k: (k, os.getpid(), torch.get_num_threads()) for k in range(3)])
    assert [r[0] for r in results] == [0, 1, 2]
    assert len({r[1] for r in results} | {os.getpid()}) == 4
    assert all(r[2] == 1 for r in results)
    assert run_forked([torch.get_num_threads] * 2, threads=2) == [2, 2]
    assert torch.get_num_threads() == threads  # the parent keeps its own


def test_bad_input_is_one_line_a_bug_keeps_its_traceback_and_a_dying_process_is_named():
    def bad_input():
        raise DataError("segments.parquet row 7: not audio")

    def bug():
        return {}["missing"]

    with pytest.raises(DataError, match=r"^segments.parquet row 7: not audio$"):
        run_forked([lambda: 1, bad_input])
    with pytest.raises(RuntimeError, match=r"(?s)a worker process failed:\nTraceback.*KeyError: 'missing'"):
        run_forked([bug])
    with pytest.raises(DataError, match=r"^a worker process ended with exit code 3$"):
        run_forked([lambda: os._exit(3), lambda: 2])


def test_the_first_failure_ends_the_other_tasks():
    def fails():
        raise DataError("no")

    start = time.monotonic()
    with pytest.raises(DataError):
        run_forked([lambda: time.sleep(60), fails])
    assert time.monotonic() - start < 30  # the sleeping task was ended, not waited for
    assert not multiprocessing.active_children()

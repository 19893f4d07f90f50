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


GARBAGE_SESSION_THEN_FORK = """
import gc, sys, time
import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from turnfusion.training.forked import fork_pool, run_forked

graph = helper.make_graph(
    [helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, [256, 256])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, [256, 256])],
    [numpy_helper.from_array(np.ones((256, 256), np.float32), "w")])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
model.ir_version = 8


class Holder:
    pass


def make_garbage():  # a session in a reference cycle: only the collector frees it
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # idle threads wait on a condition
    holder = Holder()
    holder.session, holder.me = ort.InferenceSession(model.SerializeToString(), options), holder
    holder.session.run(None, {"x": np.ones((256, 256), np.float32)})  # its pool's threads now wait for work


def collect(_=None):
    gc.collect()
    return 1


gc.disable()
make_garbage()
time.sleep(0.2)  # the pool's threads are waiting when the children are forked
if sys.argv[1] == "run_forked":
    print(run_forked([collect, collect]))
else:
    with fork_pool(2, fresh=sys.argv[1] == "fresh") as pool:
        print(pool.map(collect, range(4)))
"""


@pytest.mark.parametrize("how", ["run_forked", "pool", "fresh"])
def test_a_forked_child_does_not_hang_on_an_onnxruntime_session_the_parent_left_as_garbage(tmp_path, how):
    import subprocess
    import sys

    script = tmp_path / "fork_after_garbage.py"
    script.write_text(GARBAGE_SESSION_THEN_FORK)
    try:
        done = subprocess.run([sys.executable, str(script), how], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{how}: a child collecting the parent's garbage session hung")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() and "1" in done.stdout

"""Work shared out over forked processes of one compute thread each.

Encoding one audio segment, or running one small graph, gives a second thread almost no work (the embed stage's
audio cache: as fast with one thread as with two), so on a machine's cores, processes do what threads cannot. With
one thread each, a result is also the same bits whatever the number of cores. Tasks inherit the parent's memory (its
models and stores): only their results are pickled back.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Callable

from turnfusion.errors import DataError


def run_forked(tasks: list[Callable[[], object]]) -> list:
    """Each zero-argument task in a forked process of its own, all at once, each with one compute thread (torch's,
    and onnxruntime's for sessions the task opens); their results in order. A task that raises, or a process that
    dies, ends it with one DataError line naming the first such failure."""
    context = multiprocessing.get_context("fork")
    pipes, children = [], []
    for task in tasks:
        receive, send = context.Pipe(duplex=False)
        child = context.Process(target=_run_task, args=(send, task))
        child.start()
        send.close()
        pipes.append(receive)
        children.append(child)
    results = []
    for receive, child in zip(pipes, children, strict=True):
        try:
            results.append(receive.recv())
        except EOFError:  # the process died without a word (killed, out of memory)
            child.join()
            results.append(("error", f"a worker process ended with exit code {child.exitcode}"))
        child.join()
    failed = [value for status, value in results if status == "error"]
    if failed:
        raise DataError(failed[0])
    return [value for _, value in results]


def _run_task(send, task) -> None:
    os.environ["OMP_NUM_THREADS"] = "1"  # read by threads.thread_count(): the sessions the task opens
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    try:
        send.send(("ok", task()))
    except Exception as error:  # reported by the parent in one line
        send.send(("error", f"{type(error).__name__}: {error}"))
    finally:
        send.close()

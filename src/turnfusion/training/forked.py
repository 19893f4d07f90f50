"""Work shared out over forked processes with a set number of compute threads each.

Encoding one audio segment gives a second thread almost no work (the embed stage's audio cache: as fast with one
thread as with two), so on a machine's cores, processes do what threads cannot; with one thread each, a result is
also the same bits whatever the number of cores. Tasks inherit the parent's memory (its models and stores): only
their results are pickled back. The children set torch's thread count; a task that opens onnxruntime sessions passes
them its count itself.

A forked child never collects what it inherited: once this module is imported, every fork of the process freezes
the child's inherited objects (`gc.freeze`, from `os.register_at_fork`, before any other Python code runs there). The
parent's not yet collected garbage may hold an onnxruntime session, whose thread pool's condition variables have
waiters that were not forked, and destroying it in the child waits for them for ever (a CI run hung so: a test's fork
after earlier tests' sessions). The parent frees its garbage itself, where those threads exist. Objects the child
makes are collected as usual. `fork_pool` is the Pool of the same kind.
"""

from __future__ import annotations

import ctypes
import gc
import multiprocessing
import os
import signal
import sys
import traceback
from collections.abc import Callable
from multiprocessing.connection import wait

from turnfusion.errors import DataError

PR_SET_PDEATHSIG = 1  # Linux prctl: a signal for the child when its parent dies

os.register_at_fork(after_in_child=gc.freeze)  # the module's docstring says why


def run_forked(tasks: list[Callable[[], object]], threads: int = 1) -> list:
    """Each zero-argument task in a forked process of its own, all at once, each with `threads` torch threads; their
    results in order. The first task to fail ends the others: a DataError in a task is raised here as it is (one
    line), any other error as a RuntimeError with the task's traceback; a process that dies is a DataError naming
    its exit code. The children end with the parent (killed, interrupted)."""
    context = multiprocessing.get_context("fork")
    pipes, children, done = [], [], False
    try:
        for task in tasks:
            receive, send = context.Pipe(duplex=False)
            child = context.Process(target=_run_task, args=(send, task, threads))
            child.start()
            send.close()
            pipes.append(receive)
            children.append(child)
        results: dict[int, tuple] = {}
        while len(results) < len(tasks):
            for receive in wait([p for k, p in enumerate(pipes) if k not in results]):
                k = pipes.index(receive)
                try:
                    results[k] = receive.recv()
                except EOFError:  # the process died without a word (killed, out of memory)
                    children[k].join()
                    results[k] = ("data", f"a worker process ended with exit code {children[k].exitcode}")
                if results[k][0] == "data":
                    raise DataError(results[k][1])
                if results[k][0] == "crash":
                    raise RuntimeError(f"a worker process failed:\n{results[k][1]}")
        done = True
        return [results[k][1] for k in range(len(tasks))]
    finally:  # a child that answered still finishes (multiprocessing's finalizers); after a failure none goes on
        for child in children:
            if not done and child.is_alive():
                child.terminate()
            child.join()


def fork_pool(processes: int, fresh: bool = False):
    """A fork-context multiprocessing Pool of `processes` workers (which, forked, never collect what they inherited);
    `fresh`: a new process for every task (`maxtasksperchild=1`)."""
    return multiprocessing.get_context("fork").Pool(processes, maxtasksperchild=1 if fresh else None)


def _run_task(send, task, threads: int) -> None:
    try:  # end with the parent, even when it is killed
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux
        pass
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    try:
        send.send(("ok", task()))
    except DataError as error:  # bad input: one line, as the stage would say it
        send.send(("data", str(error)))
    except Exception:
        send.send(("crash", traceback.format_exc()))
    finally:
        send.close()

"""One benchmark run in a fresh process: its wall time, its own peak RSS and its last line of output (shared by
`hostile_sizes.py` and `label_scaling.py`)."""

import os
import subprocess
import tempfile
import time


def run(command: list[str]) -> tuple[float, float, str]:
    """(seconds, peak RSS MB of the child, its last line of output)."""
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out:
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, text=True)
        _, status, usage = os.wait4(child.pid, 0)  # this child's own peak, not the largest of all children
        seconds = time.perf_counter() - started
        out.seek(0)
        lines = out.read().strip().splitlines()
    return seconds, usage.ru_maxrss / 1024, lines[-1] if lines else f"exit status {status}"

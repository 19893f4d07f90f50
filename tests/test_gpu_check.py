import subprocess
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).parents[1]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only path")
def test_the_gpu_check_reports_the_machine_and_skips_cleanly_without_cuda():
    done = subprocess.run(["bash", str(REPO / "bench" / "gpu_check.sh")], capture_output=True, text=True,
                          timeout=600, cwd=REPO)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "GPU: none (CUDA not available)" in done.stdout
    assert "3 skipped" in done.stdout  # the tests marked gpu were collected, and skipped
    assert done.stdout.rstrip().endswith("gpu_check: no CUDA device, GPU checks skipped")

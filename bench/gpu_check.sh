#!/usr/bin/env bash
# The GPU check, in one command on a CUDA machine (after `make install`; under 10 minutes on one GPU):
#
#   bash bench/gpu_check.sh
#
#   1. environment: torch / CUDA / GPUs / bf16, transformers, accelerate, nvidia-smi
#   2. the tests marked gpu (tests/test_gpu.py): bf16 training, the GPU cache against the CPU one, DDP over every GPU
#   3. train@fusion with bf16 (compute.precision) on one GPU, then on every visible GPU (torchrun), on the demo
#      pipeline's cached embeddings (`dvc repro embed` first: it runs the stages before it if they are stale)
#   4. distil-size embed throughput (utterances/s) on one GPU, then on every visible GPU
#
# Figures and logs go to reports/gpu_check/. Without CUDA it prints the environment, reports the GPU tests as
# skipped and exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d .venv ] && export PATH="$PWD/.venv/bin:$PATH"
out=reports/gpu_check
mkdir -p "$out"

python - <<'PY' | tee "$out/environment.txt"
import platform

import accelerate
import torch
import transformers

print(f"python {platform.python_version()}, torch {torch.__version__} (CUDA {torch.version.cuda}), "
      f"transformers {transformers.__version__}, accelerate {accelerate.__version__}")
print(f"CPU threads: {torch.get_num_threads()}")
for i in range(torch.cuda.device_count()):
    p = torch.cuda.get_device_properties(i)
    print(f"GPU {i}: {p.name}, {p.total_memory / 2**30:.0f} GiB, bf16: {torch.cuda.is_bf16_supported()}")
if not torch.cuda.is_available():
    print("GPU: none (CUDA not available)")
PY
command -v nvidia-smi >/dev/null && nvidia-smi | tee -a "$out/environment.txt"

pytest -q -m gpu tests/test_gpu.py | tee "$out/tests.txt"

gpus=$(python -c "import torch; print(torch.cuda.device_count())")
if [ "$gpus" = 0 ]; then
  echo "gpu_check: no CUDA device, GPU checks skipped"
  exit 0
fi

dvc repro embed 2>&1 | tail -n 5
counts=1
[ "$gpus" -gt 1 ] && counts="1 $gpus"
for n in $counts; do
  launcher=python
  [ "$n" -gt 1 ] && launcher="torchrun --standalone --nproc_per_node $n"
  started=$SECONDS
  $launcher -m stages.train --mode fusion --segments data/segments --tokens data/tokens \
    --trp data/teacher/trp.parquet --embeddings data/embeddings --out "$out/fusion_${n}gpu" \
    --checkpoints "$out/checkpoints_${n}gpu" --live "$out/live_${n}gpu" 2>&1 | tail -n 3
  echo "train@fusion on $n GPU(s), bf16: $((SECONDS - started)) s; $(cat "$out/live_${n}gpu/metrics.json")" \
    | tee -a "$out/summary.txt"
  $launcher bench/embed_throughput.py --n $((300 * n)) --device cuda --precision bf16 \
    | tee "$out/embed_throughput_${n}gpu.json"
done
echo "gpu_check: done; figures in $out/summary.txt and $out/embed_throughput_*gpu.json"

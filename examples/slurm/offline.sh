# Sourced by the sbatch examples: a compute node without internet. Prepare once on a login node:
#   make install                      # .venv with everything (the CUDA torch wheel: see requirements-torch.txt)
#   dvc pull                          # or `make repro` there for the demo corpus; MM-F2F: download on the login node
#   python -c "from transformers import AutoModel; AutoModel.from_pretrained('distilgpt2')"  # hub models you name
# and point HF_HOME at a disk that compute nodes see.
export PATH="$PWD/.venv/bin:$PATH"
export HF_HOME="${HF_HOME:-$PWD/.hf}"   # models named by hub id are read from this cache
export HF_HUB_OFFLINE=1                 # never try the network: a missing model is an immediate, named error
export TRANSFORMERS_OFFLINE=1
export OMP_NUM_THREADS=$(( ${SLURM_CPUS_PER_TASK:-8} / ${SLURM_GPUS_ON_NODE:-1} ))  # per process
mkdir -p logs

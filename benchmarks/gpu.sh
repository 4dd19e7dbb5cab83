#!/usr/bin/env bash
# The GPU checks, as one prepared script (never part of the tests). Run on a machine with CUDA
# GPUs, from the repository root (DATA=bible for longer sentences, with the SWORD modules installed):
#   bash benchmarks/gpu.sh
# 1. tokens/s of the transformer vs the RNN, bf16 vs fp32, and the RNN's whole-sequence path with
#    cuDNN against step by step (benchmarks/gpu.py -> results/gpu.json)
# 2. trainer=ddp end to end in bf16-mixed on every GPU there (a short run; its metrics.json says what ran)
set -euo pipefail
PY=${PY:-.venv/bin/python}
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA GPU here: benchmarks/gpu.sh runs only on a GPU machine')"
export WANDB_MODE=offline WANDB_ERROR_REPORTING=false
"$PY" benchmarks/gpu.py --rounds 5 --data "${DATA:-numbers}"
"$PY" train.py trainer=ddp trainer.precision=bf16-mixed trainer.max_epochs=1 logger=csv paths.log_dir=logs/gpu_check
echo "trainer=ddp bf16-mixed: $(ls -td logs/gpu_check/runs/*/ | head -1)metrics.json"

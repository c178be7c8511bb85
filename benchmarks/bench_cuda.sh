#!/usr/bin/env bash
# effnet against timm and torchvision on a CUDA GPU: B0 and Lite0 at 224 px, random weights,
# every contestant in bf16 autocast (the AMP every library uses there), inference at batch 256
# and batch 1 (eager, channels_last) and one training step at batch 128, then torch.compile at
# batch 256 (COMPILED=0 leaves it out); alternating rounds in one process per run (`effnet bench
# --device cuda`). The CPU-only runtimes (onnxruntime, OpenVINO, ExecuTorch) are left out.
#
# On the GPU machine, from a checkout of this repository with PyTorch, timm and torchvision in
# its python3 (effnet runs from the tree through PYTHONPATH):
#
#   OUT=/tmp/bench-cuda bash benchmarks/bench_cuda.sh
#
# Writes OUT/NAME.md and OUT/NAME.json per run and OUT/machine.txt (GPU, driver, versions).
# Copy them to benchmarks/results/bench_cuda/ on the CPU machine.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/bench-cuda}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src" PYTHONUNBUFFERED=1
{
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    lscpu | grep -m1 "Model name"
    python3 -c "import torch, torchvision, timm; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'timm', timm.__version__)"
    git log -1 --format='commit %H' 2>/dev/null || true
} | tee "$OUT/machine.txt"
bench() {  # MODEL PATHS NAME SECONDS
    echo "== $1 ($2)"
    timeout --kill-after=10 "$4" python3 -m effnet bench "$1" --device cuda --threads 16 \
        --inference "$2" --peer-paths "$2" --training train --peer-training channels_last \
        --throughput-batch 256 --latency-batch 1 --train-batch 128 --rounds 3 --min-time 0.5 --no-memory \
        --json "$OUT/$3.json" --markdown "$OUT/$3.md"
}
# Eager first: the compiled run can outlast a short lease, and a cut run writes nothing.
bench efficientnet_b0 eager,channels_last efficientnet_b0 "${EAGER_SECONDS:-120}"
bench efficientnet_lite0 eager,channels_last efficientnet_lite0 "${EAGER_SECONDS:-120}"
# torch.compile: batch 256 only, no training step (compiling each contestant takes most of the time).
if [ "${COMPILED:-1}" = 1 ]; then
    echo "== efficientnet_b0 (channels_last,fused,compiled; batch 256)"
    timeout --kill-after=10 "${COMPILED_SECONDS:-300}" python3 -m effnet bench efficientnet_b0 --device cuda --threads 16 \
        --inference channels_last,fused,compiled --peer-paths channels_last,compiled \
        --peers timm:efficientnet_b0,timm:tf_efficientnet_b0 --latency-batch 0 --throughput-batch 256 --training "" \
        --rounds 3 --min-time 0.5 --no-memory --json "$OUT/efficientnet_b0_compiled.json" --markdown "$OUT/efficientnet_b0_compiled.md"
fi

#!/usr/bin/env bash
# The Table 3 trials of benchmarks/lab_table3.sh on a GPU machine: the same trials, the same
# budgets and so the same journal keys, so whatever finishes there continues the journals of a
# CPU machine, whose run of lab_table3.sh then skips it. Trials train on the GPU (the lab's
# config says device "auto"), WORKERS (default 16) at a time, stopped after BUDGET_S seconds
# (default 500; a stopped trial is lost, finished ones are journalled).
#
# On the GPU machine, from a checkout of this repository with PyTorch installed in its python3
# (effnet runs from the tree through PYTHONPATH) and Fashion-MNIST in .data/fashion-mnist
# (e.g. `mkdir -p .data && cp -r /usr/share/datasets/fashion-mnist .data/`, Debian's
# dataset-fashion-mnist package; stop any local run of lab_table3.sh first: its journals are
# what travels):
#
#   WORKERS=16 BUDGET_S=500 bash benchmarks/lab_table3_gpu.sh
#
# It copies each network's journal to OUT (default /tmp/lab-table3-gpu/NETWORK/journal.jsonl).
# Copy those over benchmarks/results/lab/table3/NETWORK/journal.jsonl on the CPU machine, then
# run benchmarks/lab_table3.sh there: it trains nothing already journalled and writes the tables
# and plots.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/lab-table3-gpu}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src" PYTHONUNBUFFERED=1 EFFNET_FASHION_MNIST="$PWD/.data/fashion-mnist"
# The machine's own python3 holds PyTorch; effnet runs from the tree (its other needs are there too).
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
# Stop within BUDGET_S, leaving time to copy the journals: a stopped trial is lost, finished ones are kept.
EFFNET="python3 -m effnet" RUNNER="--workers ${WORKERS:-16} ${EXTRA:-}" timeout --signal=TERM --kill-after=20 "${BUDGET_S:-500}" \
    benchmarks/lab_table3.sh 2>&1 | tee "$OUT/log.txt"
TABLE3=${TABLE3_OUT:-benchmarks/results/lab/table3}
for network in mobilenet_v2 mobilenet_v1 resnet50; do
    if [ -f "$TABLE3/$network/journal.jsonl" ]; then
        mkdir -p "$OUT/$network" && cp "$TABLE3/$network/journal.jsonl" "$OUT/$network/"
        echo "$network: $(wc -l < "$TABLE3/$network/journal.jsonl") trials in its journal"
    fi
done

#!/usr/bin/env bash
# Issue #16's Table 3 trials on the GPU machine, when a session is lent one (the `device` tool's
# `run`; one H200 and 16 cores there, 10 minutes a command). The same trials as
# lab_issue16_table3.sh, the same budgets and so the same journal keys: whatever finishes there
# continues the CPU journals here, and the CPU script skips it. On that machine trials train on
# the GPU (the lab's config says device "auto"), 16 at a time.
#
# Here, once (the data travels with the tree in an ignored folder; ~30 MB):
#   echo /.data/ >> .git/info/exclude; mkdir -p .data; cp -r /usr/share/datasets/fashion-mnist .data/
#   and stop any local run of lab_issue16_table3.sh (its journals are what travels).
# Then: run(command="bash benchmarks/lab_issue16_device.sh", carry=[".data"], timeout_s=560)
# and copy the journals that come back over the local ones:
#   for n in mobilenet_v2 mobilenet_v1 resnet50; do cp FILES_AT/$n/journal.jsonl benchmarks/results/lab/table3/$n/; done
# then run lab_issue16_table3.sh here: it trains nothing already journalled and writes the tables and plots.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/lab16-device}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src" PYTHONUNBUFFERED=1 EFFNET_FASHION_MNIST="$PWD/.data/fashion-mnist"
# The machine's own python3 holds PyTorch; effnet runs from the tree (its other needs are there too).
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
# Stop the trials in time for the journals to come back: a stopped trial is lost, finished ones are kept.
EFFNET="python3 -m effnet" RUNNER="--workers ${WORKERS:-16} ${EXTRA:-}" timeout --signal=TERM --kill-after=20 "${BUDGET_S:-500}" \
    benchmarks/lab_issue16_table3.sh 2>&1 | tee "$OUT/log.txt"
TABLE3=${TABLE3_OUT:-benchmarks/results/lab/table3}
for network in mobilenet_v2 mobilenet_v1 resnet50; do
    if [ -f "$TABLE3/$network/journal.jsonl" ]; then
        mkdir -p "$OUT/$network" && cp "$TABLE3/$network/journal.jsonl" "$OUT/$network/"
        echo "$network: $(wc -l < "$TABLE3/$network/journal.jsonl") trials in its journal"
    fi
done

#!/usr/bin/env bash
# The paper's Table 3 on Fashion-MNIST (docs/lab.md). MobileNetV1, MobileNetV2 and ResNet-50
# (1 channel, 10 classes) at 64 px, where their last maps are 2x2 (at 16 px five halvings leave 1x1). Compound scaling with the paper's coefficients (the default:
# alpha, beta, gamma = 1.2, 1.1, 1.15; Table 3's MobileNetV1 compound d1.4 w1.2 r1.3 is phi = 2 of them)
# against width, depth and resolution alone at matched MAdds, phi 1 and 2, 2 seeds. Each network is
# resumable from its journal under benchmarks/results/lab/table3/ (run again: finished trials are skipped).
# Budgets from the measured trial speeds (benchmarks/results/lab_trial_speed/latest.json, one core, 64 px:
# MobileNetV1 81 img/s, MobileNetV2 101, ResNet-50 16):
#   MobileNetV1/V2: the default proxy (3 epochs x 10,000 images): ~5-6 min a base trial, ~2-3 hours a
#                   network on 2 cores
#   ResNet-50:      2 epochs x 5,000 images (a third of the default's images): ~10 min a base trial,
#                   ~4-5 hours on 2 cores (or on a GPU machine: benchmarks/lab_table3_gpu.sh)
# EFFNET (default .venv/bin/effnet) and RUNNER (extra runner options, e.g. "--workers 16") come
# from the environment, so the GPU script runs these same trials (same journal keys) elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."
EFFNET=${EFFNET:-.venv/bin/effnet}
read -r -a RUNNER <<< "${RUNNER:-}"
OUT=${TABLE3_OUT:-benchmarks/results/lab/table3}
# The options of each run are in its recipe (configs/lab/table3_*.yaml); --out here only moves the
# journals when TABLE3_OUT asks for it.
for recipe in mobilenet_v2 mobilenet_v1 resnet50 mobilenet_v2_6_epochs; do
    $EFFNET lab scaling --recipe "configs/lab/table3_$recipe.yaml" "${RUNNER[@]}" --out "$OUT/$recipe"
done

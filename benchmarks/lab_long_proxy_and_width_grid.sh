#!/usr/bin/env bash
# The laboratory's checks of its own verdicts (docs/lab.md), in order, each resumable from its
# journal under benchmarks/results/lab/ (run this again after an interruption: finished trials
# are skipped).
#   1. compound vs resolution vs width at phi 2 and 3 with a 3x longer proxy (6 epochs x 15,000 images), 3 seeds
#   2. the coefficient grid's top 5 and its depth-heavy corner under the same longer proxy
#   3. Figure 4: width scaling along four (depth, resolution) curves, default proxy, 2 seeds
#   4. depth-only scaling at phi 2 and 3 with the longer proxy (added to step 1's folder)
set -euo pipefail
cd "$(dirname "$0")/.."
EFFNET=".venv/bin/effnet"
LONG=(--epochs 6 --train-subset 15000)
OUT=benchmarks/results/lab
"$EFFNET" experiment scaling fmnist_lab --coefficients "$OUT/best.json" --phis 2 3 --methods compound resolution width \
    "${LONG[@]}" --seeds 3 --out "$OUT/long_proxy/scaling"
"$EFFNET" search-coefficients fmnist_lab --points 1,1.2,1.2 1,1.1,1.3 1,1.3,1.1 1,1,1.4 1.2,1,1.3 1.9,1,1 2,1,1 \
    "${LONG[@]}" --out "$OUT/long_proxy/coefficients"
"$EFFNET" experiment width-grid fmnist_lab --seeds 2 --out "$OUT/width_grid"
"$EFFNET" experiment scaling fmnist_lab --coefficients "$OUT/best.json" --phis 2 3 "${LONG[@]}" --seeds 3 \
    --out "$OUT/long_proxy/scaling"

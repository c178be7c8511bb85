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
# Steps 1 and 4 share a folder and a recipe: the recipe asks for every method, and the journal
# keeps what an earlier run with fewer methods trained.
"$EFFNET" lab scaling --recipe configs/lab/long_proxy_scaling.yaml
"$EFFNET" lab coefficients --recipe configs/lab/long_proxy_coefficients.yaml
"$EFFNET" lab width-grid --recipe configs/lab/width_grid.yaml

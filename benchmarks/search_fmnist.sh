#!/usr/bin/env bash
# The Fashion-MNIST architecture searches of docs/search.md, each resumable from its folder under
# benchmarks/results/search/fmnist/ (run this again after an interruption: finished trials are
# skipped, the strategy's state is restored). Same proxy (the lab's default: 3 epochs x 10,000
# images, ranked on a 4,000-image minival held out from train), same seed, target T = the
# hand-designed lab base's MAdds (the fmnist skeleton's reference network).
#   1. random search, 100 candidates (the baseline every claim is measured against)
#   2. the RNN controller with PPO, 100 candidates
#   3. regularized evolution, 100 candidates
set -euo pipefail
cd "$(dirname "$0")/.."
EFFNET=".venv/bin/effnet"
for strategy in random ppo evolution; do
    "$EFFNET" nas search --recipe "configs/nas/fmnist_$strategy.yaml"
done

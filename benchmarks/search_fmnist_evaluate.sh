#!/usr/bin/env bash
# After benchmarks/search_fmnist.sh: the retraining table, the proxy check and NAS + scaling of
# docs/search.md, in order, each resumable from its journal (run this again after an
# interruption: finished trainings are skipped).
#   1. retrain from scratch: the top 3 of the searches pooled (by reward), the best within 10% of T, the hand-designed
#      fmnist_lab and 3 random networks of its MAdds, 3 seeds, the lab's long budget; test top-1
#   2. Kendall tau of the random search's proxy against 3x longer training, 10 networks
#   3. NAS + scaling: compound scaling (phi 1, 2; the lab's coefficients; the default proxy;
#      3 fresh seeds, 3-5) of the best found networks and of the hand-designed base, the same way
#      (configs/nas/fmnist_scaled_*.yaml); then the comparison table and plot
set -euo pipefail
cd "$(dirname "$0")/.."
EFFNET=".venv/bin/effnet"
S=benchmarks/results/search/fmnist
# Pool the searches that have finished their 100 candidates (evolution is optional: "if
# the budget allows"); a search finished later joins on the next run and the journal keeps the rest.
searches=()
for strategy in random ppo evolution; do
    journal="$S/$strategy-s0/journal.jsonl"
    if [ -f "$journal" ] && [ "$(grep -c '"top1"' "$journal")" -ge 100 ]; then searches+=("$S/$strategy-s0"); fi
done
"$EFFNET" nas retrain "${searches[@]}" --out "$S/retrain"
"$EFFNET" nas proxy-check --recipe configs/nas/fmnist_proxy_check.yaml
for who in found-1 near-1 base; do
    "$EFFNET" lab scaling --recipe "configs/nas/fmnist_scaled_$who.yaml"
done
.venv/bin/python benchmarks/search_scaling_compare.py --scaled "$S/scaled_fresh_seeds"

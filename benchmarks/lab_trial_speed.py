"""Trial speed of the paper's Table 3 baselines in the laboratory, for sizing the Table 3
runs (benchmarks/lab_table3.sh): one seed, 1 epoch on 2,000 Fashion-MNIST images, one
thread, at the base resolutions where their last feature maps are 1x1 (16 px) or larger (32
and 64 px). Writes ``benchmarks/results/lab_trial_speed/`` (through ``effnet.bench.results``).

    python benchmarks/lab_trial_speed.py [--resolutions 16 32 64] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from effnet import count
from effnet.bench.results import write_result
from effnet.lab.bases import lab_base
from effnet.lab.trials import Budget, Trial, train_trial

NETWORKS = ("fmnist_lab", "mobilenet_v1", "mobilenet_v2", "resnet50")
BUDGET = Budget(epochs=1, train_subset=2000, minival=500, batch_size=64, threads=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolutions", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results",
                        help="results folder (default: benchmarks/results)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for name in NETWORKS:
        for resolution in args.resolutions:
            spec = lab_base(name, resolution=resolution)
            start = time.perf_counter()
            result = train_trial(Trial("speed", "base", spec, BUDGET, 0, run_dir="/tmp/effnet-trial-speed"))
            wall = time.perf_counter() - start
            rows.append({"network": name, "resolution": resolution, "madds": count(spec).madds,
                         "params": count(spec).params, "wall_s": wall, "train_img_per_s": BUDGET.train_subset / wall,
                         "minival_top1_1_epoch": result.top1, "error": result.error})
            print(json.dumps(rows[-1]), flush=True)
    written = write_result("lab_trial_speed", {"budget": BUDGET.__dict__, "rows": rows}, root=args.out,
                           threads=BUDGET.threads)
    print(f"written: {written}", file=sys.stderr)


if __name__ == "__main__":
    main()

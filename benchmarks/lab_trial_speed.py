"""Trial speed of the paper's Table 3 baselines in the laboratory, for sizing issue #16's
Table 3 runs: one seed, 1 epoch on 2,000 Fashion-MNIST images, one thread, at the base
resolutions where their last feature maps are 1x1 (16 px) or larger (32 and 64 px).

    python benchmarks/lab_trial_speed.py [--out benchmarks/results/lab/trial_speed.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from effnet import count
from effnet.lab.bases import lab_base
from effnet.lab.trials import Budget, Trial, train_trial

NETWORKS = ("fmnist_lab", "mobilenet_v1", "mobilenet_v2", "resnet50")
BUDGET = Budget(epochs=1, train_subset=2000, minival=500, batch_size=64, threads=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolutions", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "lab" / "trial_speed.json")
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
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"budget": BUDGET.__dict__, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()

"""Measure logit parity with timm and torchvision and print the markdown table of
docs/weights.md.

For each peer model: random weights (BN statistics too), eval mode -> convert -> save as
.safetensors -> ``create_model(NAME, weights=FILE)`` -> max |logit difference| on a batch of
two random images. Run from the repository root:

    .venv/bin/python benchmarks/parity_table.py [--only PATTERN]
"""

from __future__ import annotations

import argparse
import fnmatch
import platform
import sys
import time

import torch

from effnet.bench.parity import CASES, run_parity


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="*", help="shell pattern over 'layout-model', e.g. 'timm-tf_*'")
    args = parser.parse_args()
    torch.set_num_threads(1)  # deterministic kernels, and fast on a shared machine
    import timm
    import torchvision

    print(f"torch {torch.__version__}, timm {timm.__version__}, torchvision {torchvision.__version__}, "
          f"{platform.machine()} CPU, fp32, batch 2\n")
    print("| effnet model | peer | input | max abs logit diff | max abs logit | seconds |")
    print("|---|---|---|---|---|---|")
    worst = 0.0
    for case in CASES:
        if not fnmatch.fnmatch(case.id, args.only):
            continue
        start = time.perf_counter()
        result = run_parity(case)
        worst = max(worst, result.max_abs_diff)
        sizes = ", ".join(f"{h}x{w}" for h, w in ((case.size, case.size), *case.extra_sizes))
        print(f"| {result.architecture} | {case.layout} `{case.model}` | {sizes} | "
              f"{result.max_abs_diff:.2e} | {result.max_abs_logit:.3f} | {time.perf_counter() - start:.1f} |",
              flush=True)
    print(f"\nworst: {worst:.2e} (tolerance 1e-4)")
    return 0 if worst <= 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())

"""Measure logit parity with timm and torchvision and print the markdown table of
docs/weights.md.

For each peer model: random weights (BN statistics too), eval mode -> convert -> save as
.safetensors -> ``create_model(NAME, weights=FILE)`` -> max |logit difference| on a batch of
two random images. A full run (no --only) writes ``benchmarks/results/parity/`` (through
``effnet.bench.results``); a filtered one only prints. Run from the repository root:

    .venv/bin/python benchmarks/parity_table.py [--only PATTERN]
"""

from __future__ import annotations

import argparse
import fnmatch
import platform
import sys
import time
from pathlib import Path

import torch

from effnet.bench.parity import CASES, run_parity
from effnet.bench.results import write_result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="*", help="shell pattern over 'layout-model', e.g. 'timm-tf_*'")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results",
                        help="results folder (default: benchmarks/results)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # deterministic kernels, and fast on a shared machine
    import timm
    import torchvision

    lines = [f"torch {torch.__version__}, timm {timm.__version__}, torchvision {torchvision.__version__}, "
             f"{platform.machine()} CPU, fp32, batch 2", "",
             "| effnet model | peer | input | max abs logit diff | max abs logit | seconds |", "|---|---|---|---|---|---|"]
    print("\n".join(lines))
    rows, worst = [], 0.0
    for case in CASES:
        if not fnmatch.fnmatch(case.id, args.only):
            continue
        start = time.perf_counter()
        result = run_parity(case)
        seconds = time.perf_counter() - start
        worst = max(worst, result.max_abs_diff)
        sizes = ", ".join(f"{h}x{w}" for h, w in ((case.size, case.size), *case.extra_sizes))
        rows.append({"architecture": result.architecture, "peer": case.id, "sizes": sizes, "seconds": seconds,
                     "max_abs_diff": result.max_abs_diff, "max_abs_logit": result.max_abs_logit})
        lines.append(f"| {result.architecture} | {case.layout} `{case.model}` | {sizes} | "
                     f"{result.max_abs_diff:.2e} | {result.max_abs_logit:.3f} | {seconds:.1f} |")
        print(lines[-1], flush=True)
    lines += ["", f"worst: {worst:.2e} (tolerance 1e-4)"]
    print("\n" + lines[-1])
    if args.only == "*":
        record = {"rows": rows, "worst_max_abs_diff": worst, "tolerance": 1e-4}
        markdown = "\n".join(lines) + "\n"
        print(f"written: {write_result('parity', record, markdown, root=args.out, threads=1)}", file=sys.stderr)
    return 0 if worst <= 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())

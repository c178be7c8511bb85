"""The paper's Table 3 on Fashion-MNIST (docs/lab.md), beside the paper's numbers.

Reads the journals of `benchmarks/lab_table3.sh` (benchmarks/results/lab/table3/NET/
journal.jsonl), so it also reports a run still under way: a network with no finished trial
is listed as not run, a method with no trial yet as "-". Writes table3.md beside the journals
and a plot (one panel per network) to OUT (default docs/img/lab_table3.png).

    python benchmarks/lab_table3_compare.py
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path


from effnet.lab import Journal, TrialResult
from effnet.lab.scaling_experiment import DIMENSIONS
from effnet.figures import new_figure, save_png
from effnet.lab.report import Point, compare, draw_scaling, label_accuracy_axes, summarise

HERE = Path(__file__).resolve().parent
NETWORKS = {"mobilenet_v1": "MobileNetV1", "mobilenet_v2": "MobileNetV2", "resnet50": "ResNet-50"}
METHODS = DIMENSIONS
# The paper's Table 3 (ImageNet top-1 %, FLOPS in B): the base, each dimension scaled about 4x
# in FLOPS, and compound scaling (MobileNetV1 has no depth row there).
PAPER = {
    "mobilenet_v1": {"base": (70.6, 0.6), "width": (74.2, 2.2), "resolution": (72.7, 2.2), "compound": (75.6, 2.3)},
    "mobilenet_v2": {"base": (72.0, 0.3), "depth": (76.8, 1.2), "width": (76.4, 1.1), "resolution": (74.8, 1.2),
                     "compound": (77.4, 1.3)},
    "resnet50": {"base": (76.0, 4.1), "depth": (78.1, 16.2), "width": (77.7, 14.7), "resolution": (77.5, 16.4),
                 "compound": (78.8, 16.7)},
}


def _cell(points: list[Point], method: str, phi: float) -> str:
    """Mean ± 95% interval, with the MAdds and their ratio to the base: the paper's coefficients
    give each network its own ratio at a phi (depth rounds up on short stages)."""
    found = [p for p in points if p.method == method and (method == "base" or p.phi == phi)]
    if not found:
        return "-"
    p = found[0]
    base = next(b.madds for b in points if b.method == "base")
    spread = "" if math.isnan(p.ci95) else f" ± {p.ci95:.2f}"
    return f"{p.mean:.2f}{spread} ({p.madds / 1e6:.0f} M, {p.madds / base:.1f}x, n={p.n})"


def _paper(network: str, method: str) -> str:
    entry = PAPER[network].get(method)
    return "-" if entry is None else f"{entry[0]:.1f} ({entry[1]:g} B)"


def table(root: Path) -> tuple[str, dict[str, tuple[list[Point], list[TrialResult]]]]:
    lines = ["| network | method | paper (ImageNet, ~4x FLOPS) | ours, phi = 1 (MAdds, x base) | ours, phi = 2 |",
             "|---|---|---|---|---|"]
    verdicts, found = [], {}  # found: network -> (points, results)
    for network, name in NETWORKS.items():
        journal = root / network / "journal.jsonl"
        results = list(Journal(journal).load().values()) if journal.exists() else []
        points = summarise(results)
        if not points:
            lines.append(f"| {name} | not run yet | | | |")
            continue
        found[network] = points, results
        for method in ("base", *METHODS, "compound"):
            label = f"**{method}**" if method == "compound" else method
            at_phi2 = "(the same base)" if method == "base" else _cell(points, method, 2.0)
            lines.append(f"| {name} | {label} | {_paper(network, method)} | {_cell(points, method, 1.0)} | {at_phi2} |")
        for phi in (1.0, 2.0):
            done = [m for m in METHODS if any(p.method == m and p.phi == phi for p in points)]
            if "compound" not in {p.method for p in points if p.phi == phi} or not done:
                continue
            best = max(done, key=lambda m: next(p.mean for p in points if p.method == m and p.phi == phi))
            w = compare(results, "compound", best, phi)
            ci = "" if math.isnan(w["ci95"]) else f" ± {w['ci95']:.2f} (Welch 95%, p = {w['p']:.2g})"
            verdicts.append(f"- {name}, phi = {phi:g}: compound minus the best single dimension ({best}): "
                            f"{w['diff']:+.2f}{ci}")
    paper = ["- The paper: compound minus the best single dimension is +1.4 (MobileNetV1, width), +0.6 "
             "(MobileNetV2, depth) and +0.7 (ResNet-50, depth) points."]
    return "\n".join(lines + [""] + verdicts + paper) + "\n", found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=HERE / "results" / "lab" / "table3")
    parser.add_argument("--out", type=Path, default=HERE.parent / "docs" / "img" / "lab_table3.png")
    args = parser.parse_args()
    text, found = table(args.root)
    args.root.mkdir(parents=True, exist_ok=True)
    (args.root / "table3.md").write_text(text)
    print(text)
    if found:
        fig = new_figure(5 * len(found), 4.5)
        panels = fig.subplots(1, len(found), squeeze=False)[0]
        for ax, (network, (points, results)) in zip(panels, found.items()):
            draw_scaling(ax, points, results)
            label_accuracy_axes(ax, f"{NETWORKS[network]} at 64 px", "multiply-adds (M); dots: single seeds, lines: means")
        fig.suptitle("Table 3 on Fashion-MNIST: compound vs single-dimension scaling at matched MAdds")
        save_png(fig, args.out)
        print(f"table: {args.root / 'table3.md'}; plot: {args.out}")


if __name__ == "__main__":
    main()

"""NAS + scaling, side by side: the networks the search found and the hand-designed base, each
compound-scaled the same way (configs/nas/fmnist_scaled_*.yaml, the last step of
`benchmarks/search_fmnist_evaluate.sh`): one accuracy-against-MAdds curve per network, and the
difference to the base at each phi and at about the same MAdds (within 10%) with a Welch 95%
interval (the laboratory's `welch`, applied across experiments).

    python benchmarks/search_scaling_compare.py [--scaled benchmarks/results/search/fmnist/scaled_fresh_seeds]

Writes SCALED/comparison.{md,png}.
"""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path

from effnet.figures import new_figure, save_png
from effnet.lab.report import ci95, label_accuracy_axes, welch

HERE = Path(__file__).resolve().parent
MADDS_TOLERANCE = 0.10
LABELS = {"found-1": "found-1 (best reward)", "near-1": "near-1 (best within 10% of T)",
          "base": "hand-designed base (fmnist_lab)"}


def read(folder: Path) -> dict[float, dict[str, object]]:
    """phi -> MAdds, resolution and the seeds' minival top-1 of one scaled network."""
    out: dict[float, dict[str, object]] = {}
    with open(folder / "scaling.csv") as f:
        for row in csv.DictReader(f):
            if row["status"] != "ok":
                continue
            phi = float(row["label_phi"])
            entry = out.setdefault(phi, {"madds": int(row["madds"]), "resolution": int(row["resolution"]), "top1": []})
            entry["top1"].append(float(row["top1"]))  # type: ignore[union-attr]
    return out


def difference(a: list[float], b: list[float]) -> str:
    w = welch(a, b)
    return f"{w['diff']:+.2f} ± {w['ci95']:.2f} (p = {w['p']:.2f})"


def at_same_madds(top1: list[float], madds: int, base: dict[float, dict[str, object]]) -> str:
    """Minus the base's point nearest in MAdds, only when the two lie within MADDS_TOLERANCE of
    each other's MAdds: a pair further apart compares cost as much as architecture."""
    other = min(base, key=lambda q: abs(math.log(base[q]["madds"] / madds)))  # type: ignore[operator]
    ratio = madds / base[other]["madds"]  # type: ignore[operator]
    if max(ratio, 1 / ratio) > 1 + MADDS_TOLERANCE:
        return f"none within {MADDS_TOLERANCE:.0%} (nearest: phi {other:g}, MAdds x{ratio:.2f})"
    return f"{difference(top1, base[other]['top1'])} vs phi {other:g}, MAdds x{ratio:.2f}"  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scaled", type=Path, default=HERE / "results" / "search" / "fmnist" / "scaled_fresh_seeds")
    args = parser.parse_args()
    networks = {name: read(args.scaled / name) for name in LABELS if (args.scaled / name / "scaling.csv").is_file()}
    base = networks["base"]
    lines = ["Compound scaling (the laboratory's coefficients, default proxy: 3 epochs x 10,000 images, 3 seeds, "
             "minival top-1) of the networks the search found and of the hand-designed base. Difference: "
             "network minus the base at the same phi, and minus the base's point nearest in MAdds (the iso-cost "
             "view, only for pairs within 10% of each other's MAdds; the ratio beside it), Welch 95% intervals, points "
             "of top-1.", "",
             "| network | phi | MAdds | resolution | minival top-1 (%) | minus the base, same phi | "
             "minus the base within 10% of its MAdds |", "|---|---|---|---|---|---|---|"]
    fig = new_figure(7, 4.5)
    ax = fig.subplots()
    for name, points in networks.items():
        xs, ys, errs = [], [], []
        for phi in sorted(points):
            p = points[phi]
            top1: list[float] = p["top1"]  # type: ignore[assignment]
            mean, _, half = ci95(top1)
            xs.append(p["madds"] / 1e6)  # type: ignore[operator]
            ys.append(mean)
            errs.append(0 if math.isnan(half) else half)
            versus = nearest = "-"
            if name != "base" and phi in base:
                versus = difference(top1, base[phi]["top1"])  # type: ignore[arg-type]
            if name != "base":
                nearest = at_same_madds(top1, p["madds"], base)  # type: ignore[arg-type]
            lines.append(f"| {name} | {phi:g} | {p['madds'] / 1e6:.2f} M | {p['resolution']} px | {mean:.2f} ± "  # type: ignore[operator]
                         f"{half:.2f} (n={len(top1)}) | {versus} | {nearest} |")
        ax.errorbar(xs, ys, yerr=errs, marker="o", capsize=3, label=LABELS[name])
        for x, y, phi in zip(xs, ys, sorted(points)):
            ax.annotate(f"phi={phi:g}", (x, y), fontsize=7, xytext=(4, -10), textcoords="offset points")
    ax.set_xscale("log")
    label_accuracy_axes(ax, "Searched vs hand-designed baseline, compound-scaled (Fashion-MNIST)",
                        "multiply-adds (M, log scale)")
    save_png(fig, args.scaled / "comparison.png")
    (args.scaled / "comparison.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"plot: {args.scaled / 'comparison.png'}")


if __name__ == "__main__":
    main()

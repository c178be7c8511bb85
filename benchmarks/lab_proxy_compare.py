"""Issue #16 section 1: the laboratory's scaling experiment under its default proxy and under
the 3x longer one, side by side (one panel each, the same axes): does the proxy decide the
verdict? Reads the two experiments' summary.json, writes OUT (default docs/img/lab_long_proxy.png).

    python benchmarks/lab_proxy_compare.py
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from matplotlib.figure import Figure

from effnet.lab.report import Point

HERE = Path(__file__).resolve().parent
STYLES = {"compound": ("tab:red", "o"), "width": ("tab:blue", "s"), "depth": ("tab:green", "^"),
          "resolution": ("tab:purple", "D")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", type=Path, default=HERE / "results" / "lab" / "summary.json")
    parser.add_argument("--long", type=Path, default=HERE / "results" / "lab" / "long_proxy" / "scaling" / "summary.json")
    parser.add_argument("--out", type=Path, default=HERE.parent / "docs" / "img" / "lab_long_proxy.png")
    args = parser.parse_args()
    fig = Figure(figsize=(11, 4.5))  # no pyplot: no global figure state, no GUI backend
    panels = fig.subplots(1, 2, sharey=False)
    for ax, path in zip(panels, (args.short, args.long)):
        summary = json.loads(path.read_text())
        points = [Point(**p) for p in summary["points"]]
        phis = {p.phi for p in points if p.method != "base"}
        base = [p for p in points if p.method == "base"]
        for method, (colour, marker) in STYLES.items():
            series = sorted(base + [p for p in points if p.method == method and p.phi in phis], key=lambda p: p.madds)
            if len(series) > len(base):
                ax.errorbar([p.madds / 1e6 for p in series], [p.mean for p in series], yerr=[p.ci95 for p in series],
                            label=method, color=colour, marker=marker, capsize=3)
        b = summary["budget"]
        ax.set_title(f"{b['epochs']} epochs x {b['train_subset']:,} images, {len(summary['seeds'])} seeds")
        ax.set_xlabel("multiply-adds (M)")
        ax.set_ylabel("minival top-1 (%)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("fmnist_lab scaled by each method: the default proxy (left) and a 3x longer one (right)")
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=120)
    print(f"plot: {args.out}")


if __name__ == "__main__":
    main()

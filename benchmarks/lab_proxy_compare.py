"""The laboratory's scaling experiment (docs/lab.md) under its default proxy and under
the 3x longer one, side by side (one panel each, the same axes): does the proxy decide the
verdict? Reads the two experiments' summary.json, writes OUT (default docs/img/lab_long_proxy.png).

    python benchmarks/lab_proxy_compare.py
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


from effnet.figures import new_figure, save_png
from effnet.lab.report import Point, draw_scaling, label_accuracy_axes

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", type=Path, default=HERE / "results" / "lab" / "summary.json")
    parser.add_argument("--long", type=Path, default=HERE / "results" / "lab" / "long_proxy" / "scaling" / "summary.json")
    parser.add_argument("--out", type=Path, default=HERE.parent / "docs" / "img" / "lab_long_proxy.png")
    args = parser.parse_args()
    fig = new_figure(11, 4.5)
    panels = fig.subplots(1, 2, sharey=False)
    for ax, path in zip(panels, (args.short, args.long)):
        summary = json.loads(path.read_text())
        draw_scaling(ax, [Point(**p) for p in summary["points"]])
        b = summary["budget"]
        label_accuracy_axes(ax, f"{b['epochs']} epochs x {b['train_subset']:,} images, {len(summary['seeds'])} seeds",
                            "multiply-adds (M)")
    fig.suptitle("fmnist_lab scaled by each method: the default proxy (left) and a 3x longer one (right)")
    save_png(fig, args.out)
    print(f"plot: {args.out}")


if __name__ == "__main__":
    main()

"""`effnet lab scaling BASE`: compound vs single-dimension scaling at matched MAdds;
`effnet lab width-grid BASE`: the paper's Figure 4."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from ..lab.experiments import scaling_experiment, width_grid_experiment
from ..lab.scaling_experiment import METHODS
from ..lab.width_grid import CONFIGS, WIDTHS
from ..scaling import ALPHA, BETA, GAMMA
from ._format import print_table
from ._names import hide, add_old_name
from ._lab import add_common, base_from, budget_from, options_from


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("experiment", description="The old name of `effnet lab scaling|width-grid`; it keeps "
                              "working.")
    hide(subparsers, ["experiment"])
    kinds = p.add_subparsers(dest="experiment", metavar="EXPERIMENT", required=True, parser_class=type(p))
    add_old_name(kinds, "scaling", "lab scaling", configure_scaling, group="experiment")
    add_old_name(kinds, "width-grid", "lab width-grid", configure_width_grid, group="experiment")


def configure_scaling(s: argparse.ArgumentParser) -> None:
    add_common(s)
    s.add_argument("--phis", type=float, nargs="+", default=None, help="compound coefficients (default 1 2 3)")
    s.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS), metavar="METHOD",
                   help=f"which networks to train at each phi (default all: {' '.join(METHODS)}); a later run "
                        "with more methods in the same --out reuses the finished trials")
    s.add_argument("--first-seed", type=int, default=0, metavar="N",
                   help="seeds N, N+1, ... (default 0); fresh seeds keep a network's selection run out of its "
                        "comparison, e.g. a searched network chosen on seed 0's minival top-1")
    s.add_argument("--alpha", type=float, default=ALPHA)
    s.add_argument("--beta", type=float, default=BETA)
    s.add_argument("--gamma", type=float, default=GAMMA)
    s.add_argument("--coefficients", type=Path, default=None, metavar="BEST_JSON",
                   help="take alpha, beta, gamma from a search: `effnet lab coefficients --out DIR` "
                        "writes DIR/best.json (default: the paper's 1.2, 1.1, 1.15)")
    s.set_defaults(func=run)


def configure_width_grid(g: argparse.ArgumentParser) -> None:
    add_common(g)
    g.add_argument("--widths", type=float, nargs="+", default=list(WIDTHS), help=f"width multipliers (default "
                   f"{' '.join(f'{w:g}' for w in WIDTHS)})")
    g.add_argument("--curves", nargs="+", type=pair, default=list(CONFIGS), metavar="D,R",
                   help="(depth, resolution) multipliers, one curve each (default the paper's 1,1 2,1 1,1.3 2,1.3)")
    g.set_defaults(func=run_width_grid)


def pair(text: str) -> tuple[float, float]:
    try:
        depth, resolution = (float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a curve is DEPTH,RESOLUTION (two numbers), got {text!r}") from None
    return (depth, resolution)


def coefficients_from(args: argparse.Namespace) -> tuple[float, float, float]:
    if args.coefficients is None:
        return (args.alpha, args.beta, args.gamma)
    path = args.coefficients / "best.json" if args.coefficients.is_dir() else args.coefficients
    try:
        best = json.loads(path.read_text())
        return (float(best["alpha"]), float(best["beta"]), float(best["gamma"]))
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"--coefficients {path}: not a search result with alpha, beta and gamma ({error}); "
                         "run `effnet lab coefficients BASE --out DIR` and pass DIR/best.json") from None


def run(args: argparse.Namespace) -> int:
    phis = args.phis or ([1.0] if args.quick else [1.0, 2.0, 3.0])
    if args.first_seed < 0:
        raise ValueError(f"--first-seed must be 0 or more, got {args.first_seed}")
    seeds = range(args.first_seed, args.first_seed + (args.seeds or (1 if args.quick else 3)))
    summary = scaling_experiment(base_from(args), budget_from(args), options_from(args), phis=phis,
                                 coefficients=coefficients_from(args), seeds=seeds, methods=args.methods)
    rows = [(p["method"], f"{p['phi']:g}", f"{p['madds'] / 1e6:.2f}M", f"{p['params']:,}", p["resolution"],
             f"{p['mean']:.2f}", "-" if math.isnan(p["ci95"]) else f"±{p['ci95']:.2f}", p["n"])
            for p in summary["points"]]  # type: ignore[union-attr]
    print_table("minival top-1 by scaling method", ["method", "phi", "MAdds", "params", "res", "top-1", "95% CI",
                                                    "seeds"], rows)
    smoke = args.quick or len(seeds) < 2
    for phi, against in summary["compound_minus"].items():  # type: ignore[union-attr]
        parts = [f"{other} {d['diff']:+.2f}" + ("" if math.isnan(d["ci95"]) else f" ±{d['ci95']:.2f}")
                 for other, d in against.items()]
        print(("smoke test, not a result: " if smoke else "") + f"compound minus single-dimension at {phi}: "
              + ", ".join(parts) + " (points of top-1)")
    if smoke:
        print("one seed and a tiny budget show that the pipeline runs, not which method wins (seed-to-seed noise "
              "is several points); the full experiment (3 seeds, confidence intervals) is in docs/lab.md")
    print(f"plot: {args.out / 'scaling.png'}; tables: {args.out / 'scaling.csv'}")
    return 0


def run_width_grid(args: argparse.Namespace) -> int:
    seeds = range(args.seeds or (1 if args.quick else 2))
    widths = args.widths[:2] if args.quick else args.widths
    summary = width_grid_experiment(base_from(args), budget_from(args), options_from(args), widths=widths,
                                    configs=args.curves, seeds=seeds)
    rows = [(p["method"], f"{p['width']:g}", f"{p['madds'] / 1e6:.2f}M", f"{p['params']:,}", p["resolution"],
             f"{p['mean']:.2f}", "-" if math.isnan(p["ci95"]) else f"±{p['ci95']:.2f}", p["n"])
            for p in summary["points"]]  # type: ignore[union-attr]
    print_table("minival top-1 by width, per (depth, resolution) curve",
                ["curve", "width", "MAdds", "params", "res", "top-1", "95% CI", "seeds"], rows)
    equal = summary["equal_madds"]
    if equal:
        curves = [k for k in equal[0] if k != "madds"]  # type: ignore[index]
        print_table("top-1 at equal MAdds (Figure 4: which curve is higher at the same cost)",
                    ["MAdds", *curves], [(f"{row['madds'] / 1e6:.2f}M", *(f"{row[c]:.2f}" for c in curves))
                                         for row in equal])  # type: ignore[union-attr]
    print(f"plot: {args.out / 'width_grid.png'}; tables: {args.out / 'width_grid.csv'}")
    return 0

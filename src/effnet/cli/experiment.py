"""`effnet experiment scaling BASE`: compound vs single-dimension scaling at matched MAdds."""

from __future__ import annotations

import argparse
import math

from ..lab.experiments import scaling_experiment
from ..scaling import ALPHA, BETA, GAMMA
from ._format import print_table
from ._lab import add_common, base_from, budget_from, options_from

DEFAULTS = {"epochs": 3, "train_subset": 20000, "minival": 5000}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("experiment", help="the paper's scaling experiments on real data")
    kinds = p.add_subparsers(dest="experiment", metavar="EXPERIMENT", required=True)
    s = kinds.add_parser("scaling", help="compound vs width/depth/resolution scaling at matched MAdds")
    add_common(s)
    s.add_argument("--phis", type=float, nargs="+", default=None, help="compound coefficients (default 1 2 3)")
    s.add_argument("--alpha", type=float, default=ALPHA)
    s.add_argument("--beta", type=float, default=BETA)
    s.add_argument("--gamma", type=float, default=GAMMA)
    s.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    phis = args.phis or ([1.0] if args.quick else [1.0, 2.0, 3.0])
    seeds = range(args.seeds or (1 if args.quick else 3))
    summary = scaling_experiment(base_from(args), budget_from(args, DEFAULTS), options_from(args), phis=phis,
                                 coefficients=(args.alpha, args.beta, args.gamma), seeds=seeds)
    rows = [(p["method"], f"{p['phi']:g}", f"{p['madds'] / 1e6:.2f}M", f"{p['params']:,}", p["resolution"],
             f"{p['mean']:.2f}", "-" if math.isnan(p["ci95"]) else f"±{p['ci95']:.2f}", p["n"])
            for p in summary["points"]]  # type: ignore[union-attr]
    print_table("minival top-1 by scaling method", ["method", "phi", "MAdds", "params", "res", "top-1", "95% CI",
                                                    "seeds"], rows)
    for phi, against in summary["compound_minus"].items():  # type: ignore[union-attr]
        parts = [f"{other} {d['diff']:+.2f}" + ("" if math.isnan(d["ci95"]) else f" ±{d['ci95']:.2f}")
                 for other, d in against.items()]
        print(f"compound minus single-dimension at {phi}: " + ", ".join(parts) + " (points of top-1)")
    print(f"plot: {args.out / 'scaling.png'}; tables: {args.out / 'scaling.csv'}")
    return 0

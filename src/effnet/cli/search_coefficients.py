"""`effnet lab coefficients BASE`: paper step 1, the alpha/beta/gamma grid at phi = 1."""

from __future__ import annotations

import argparse

from ..lab.experiments import search_coefficients
from ._names import add_old_name
from ._format import print_table
from ._lab import add_common, base_from, budget_from, options_from


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    add_old_name(subparsers, "search-coefficients", "lab coefficients", configure)


def configure(p: argparse.ArgumentParser) -> None:
    add_common(p)
    p.add_argument("--step", type=float, default=0.1, help="grid step from 1.0 (default 0.1)")
    p.add_argument("--tolerance", type=float, default=0.1, help="|alpha*beta^2*gamma^2 - 2| allowed (default 0.1)")
    p.add_argument("--points", nargs="+", type=triple, default=None, metavar="A,B,G",
                   help="evaluate only these (alpha, beta, gamma) points, e.g. the best of an earlier search "
                        "under another budget: --points 1,1.2,1.2 2,1,1")
    p.set_defaults(func=run)


def triple(text: str) -> tuple[float, float, float]:
    try:
        alpha, beta, gamma = (float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a point is ALPHA,BETA,GAMMA (three numbers), got {text!r}") from None
    if min(alpha, beta, gamma) < 1:
        raise argparse.ArgumentTypeError(f"alpha, beta and gamma must be at least 1, got {text!r}")
    return (alpha, beta, gamma)


def run(args: argparse.Namespace) -> int:
    seeds = range(args.seeds or 1)
    rows = search_coefficients(base_from(args), budget_from(args), options_from(args),
                               step=args.step, tolerance=args.tolerance, seeds=seeds, points=args.points)
    print_table(f"coefficient search (phi = 1), {len(rows)} grid points, best first",
                ["alpha", "beta", "gamma", "a*b^2*g^2", "minival top-1", "seeds"],
                [(f"{r.alpha:g}", f"{r.beta:g}", f"{r.gamma:g}", f"{r.product:.3f}", f"{r.mean_top1:.2f}", r.n)
                 for r in rows])
    if rows:
        best = rows[0]
        print(f"best: alpha={best.alpha:g} beta={best.beta:g} gamma={best.gamma:g} "
              f"(paper, for B0 on ImageNet: 1.2 / 1.1 / 1.15); results in {args.out}")
    return 0 if rows else 1

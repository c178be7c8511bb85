"""`effnet nas retrain SEARCH [SEARCH ...]`: the networks a search found, retrained from
scratch beside the hand-designed base and random networks of the same MAdds, test top-1 with
95% intervals over seeds (docs/search.md)."""

from __future__ import annotations

import argparse

from ..search.retrain import ROLES, retrain
from ._names import add_old_name
from ._format import print_table
from ._lab import add_budget_and_runner, budget_from, options_from

# The retraining budget: the laboratory's long one (3x the proxy's images: 6 epochs x 15,000),
# the same for every network. A full training of 21 networks (7 x 3 seeds) on all 60,000
# images would take about 7 hours on 2 cores; this takes about 2.
RETRAIN = {"epochs": 6, "train_subset": 15000, "minival": 4000}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    add_old_name(subparsers, "search-retrain", "nas retrain", configure)


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("searches", nargs="+", metavar="SEARCH", help="search folders (`effnet nas search --out`)")
    p.add_argument("--top", type=int, default=3, help="distinct networks with the best reward (default 3)")
    p.add_argument("--near", type=int, default=1,
                   help="also the best found (by proxy top-1) within --tolerance of the search's target (default 1)")
    p.add_argument("--random", type=int, default=3, dest="randoms",
                   help="random networks of the space within --tolerance of the base's MAdds (default 3)")
    p.add_argument("--tolerance", type=float, default=0.1,
                   help="cost tolerance of the random ones and of --near, a fraction (default 0.1)")
    p.add_argument("--random-seed", type=int, default=0, help="seed of the random draw (default 0)")
    p.add_argument("--no-latency", action="store_true",
                   help="skip the latency column (ms in the latency table's runtime when the search had one, "
                        "else eager PyTorch)")
    add_budget_and_runner(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    seeds = range(1 if args.quick else (args.seeds or 3))
    summary = retrain(args.searches, budget_from(args, RETRAIN), options_from(args), top=args.top, near=args.near,
                      randoms=args.randoms, seeds=tuple(seeds), random_seed=args.random_seed,
                      tolerance=args.tolerance, latency=not args.no_latency)
    print_table(f"retrained from scratch ({summary['skeleton']} skeleton, {len(summary['seeds'])} seeds)",
                ["network", "role", "test top-1", "test reward", "MAdds", "params", "ms"],
                [(r["name"], ROLES[r["role"]],
                  f"{r['test_mean']:.2f}" + (f" ± {r['test_ci95']:.2f}" if r["seeds"] > 1 else ""),
                  "-" if r["test_reward"] is None else f"{r['test_reward']:.4f}",
                  f"{r['madds'] / 1e6:.2f} M", f"{r['params']:,}",
                  "-" if r["latency_ms"] is None else f"{r['latency_ms']:.2f}") for r in summary["rows"]])
    print(f"table: {args.out / 'retrain.md'}, plot: {args.out / 'retrain.png'}")
    return 0

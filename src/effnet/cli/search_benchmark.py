"""`effnet search-benchmark nas-bench-graph --dataset NAME`: the search strategies on a table
of trained architectures that nobody here wrote (docs/search.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..search.controller import STRATEGIES
from ..search.nas_bench_graph import DATASETS
from ..search.table_benchmark import CHECKPOINTS, run_table_benchmark
from ._format import print_table


def strategy_list(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in STRATEGIES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"strategies are a comma-separated list of {', '.join(STRATEGIES)}, got {text!r}")
    return names


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("search-benchmark", help="check the search strategies on NAS-Bench-Graph's tables")
    p.add_argument("benchmark", choices=("nas-bench-graph",))
    p.add_argument("--dataset", choices=DATASETS, default="cora")
    p.add_argument("--strategies", type=strategy_list, default=["random", "evolution", "ppo"],
                   help=f"comma-separated, from {','.join(STRATEGIES)} (default random,evolution,ppo)")
    p.add_argument("--evaluations", type=int, default=100)
    p.add_argument("--seeds", type=int, default=20, help="independent searches per strategy (default 20)")
    p.add_argument("--controller-lr", type=float, default=None,
                   help="Adam learning rate of the ppo/reinforce controller (default 3.5e-4, NASNet's)")
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.evaluations < 1 or args.seeds < 1:
        raise ValueError("--evaluations and --seeds must be at least 1")
    summary = run_table_benchmark(args.dataset, args.strategies, args.evaluations, args.seeds, args.out,
                                  controller_lr=args.controller_lr)
    steps = [n for n in CHECKPOINTS if n <= args.evaluations]
    rows = []
    for name, entry in summary["strategies"].items():  # type: ignore[union-attr]
        cells = [f"{entry[f'best_reward_after_{n}']['median']:.4f} [{entry[f'best_reward_after_{n}']['q1']:.4f}, "
                 f"{entry[f'best_reward_after_{n}']['q3']:.4f}]" for n in steps]
        test = entry["best_test_accuracy"]
        rows.append((name, *cells, f"{100 * test['median']:.2f}", f"{entry['found_table_optimum']}/{args.seeds}"))
    print_table(f"NAS-Bench-Graph {args.dataset}: best reward after N evaluations, median [IQR] of {args.seeds} seeds "
                f"(table optimum {summary['table_optimum_reward']:.4f})",
                ["strategy", *(f"after {n}" for n in steps), "best arch test %", "found optimum"], rows)
    print(f"summary: {args.out / 'summary.json'}; plot: {args.out / 'best_so_far.png'}")
    return 0

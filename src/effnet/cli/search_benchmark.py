"""`effnet nas benchmark nas-bench-graph --dataset NAME`: the search strategies on a table
of trained architectures that nobody here wrote (docs/search.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..search.controller import DEFAULTS, STRATEGIES
from ..search.nas_bench_graph import DATASETS
from ..search.table_benchmark import CHECKPOINTS, run_table_benchmark
from ._names import add_old_name
from ._format import print_table


def strategy_list(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in STRATEGIES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"strategies are a comma-separated list of {', '.join(STRATEGIES)}, got {text!r}")
    return names


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    add_old_name(subparsers, "search-benchmark", "nas benchmark", configure)


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("benchmark", choices=("nas-bench-graph",))
    p.add_argument("--dataset", choices=DATASETS, default="cora")
    p.add_argument("--strategies", type=strategy_list, default=list(STRATEGIES),
                   help=f"comma-separated, from {','.join(STRATEGIES)} (default all)")
    p.add_argument("--evaluations", type=int, default=200)
    p.add_argument("--seeds", type=int, default=20, help="independent searches per strategy (default 20)")
    p.add_argument("--controller-lr", type=float, default=None,
                   help=f"Adam learning rate of the ppo/reinforce controller (default {DEFAULTS['ppo']['lr']:g} for ppo, "
                        f"{DEFAULTS['reinforce']['lr']:g} for reinforce; NASNet's was 3.5e-4)")
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
        cells = [_cell(entry, n) for n in steps]
        test = entry["best_test_accuracy"]
        rows.append((name, *cells, f"{100 * test['median']:.2f}", f"{entry['found_table_optimum']}/{args.seeds}"))
    print_table(f"NAS-Bench-Graph {args.dataset}: best reward after N evaluations, mean ± 95% interval of {args.seeds} "
                f"seeds, and against random search (Welch 95%; a tie where the interval holds 0); table optimum "
                f"{summary['table_optimum_reward']:.4f}",
                ["strategy", *(f"after {n}" for n in steps), "best arch test %", "found optimum"], rows)
    print(f"summary: {args.out / 'summary.json'} (medians and quartiles too); plot: {args.out / 'best_so_far.png'}")
    return 0


def _cell(entry: dict[str, dict[str, float]], n: int) -> str:
    best = entry[f"best_reward_after_{n}"]
    text = f"{best['mean']:.4f} ± {best['ci95']:.4f}"
    versus = entry.get(f"against_random_after_{n}")
    if versus is not None:
        text += f" ({versus['diff']:+.4f} ± {versus['ci95']:.4f}, {versus['verdict']})"
    return text

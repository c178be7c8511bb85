"""`effnet nas search [SKELETON]`: MnasNet-style multi-objective architecture search on real data
(the search that found B0), journaled and resumable (docs/search.md)."""

from __future__ import annotations

import argparse

from ..search.controller import STRATEGIES
from ..search.loop import SearchConfig, run_search
from ..search.rewards import KINDS
from ..search.space import SKELETONS
from ..search.tune import run_search_on_tune
from ._names import add_old_name
from ._format import print_table
from ._lab import add_budget_and_runner, budget_from, options_from


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    add_old_name(subparsers, "search-baseline", "nas search", configure, aliases=['search'])


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("skeleton", nargs="?", default="fmnist", choices=tuple(SKELETONS),
                   help="fmnist (default: the lab's 4-stage base, 16 px) or b0 (B0's 7 stages, 224 px)")
    p.add_argument("--strategy", choices=STRATEGIES, default="evolution",
                   help="evolution (default: ahead of random search at 100 and 200 evaluations on every NAS-Bench-Graph "
                        "table), random, ppo (MnasNet's controller) or reinforce (docs/search.md)")
    p.add_argument("--reward", choices=tuple(KINDS), default="soft",
                   help="soft: ACC x (COST/T)^-0.07 (MnasNet, EfficientNet); hard: no gain below T, ^-1 above; "
                        "abs: ACC - 0.07 |COST/T - 1| (TuNAS)")
    p.add_argument("--cost", choices=("madds", "latency"), default="madds",
                   help="madds (counted from the spec, the EfficientNet search) or latency (MnasNet: ms predicted by "
                        "--latency-table in its runtime; without a table, eager PyTorch timed on this CPU)")
    p.add_argument("--latency-table", default="", metavar="FILE",
                   help="with --cost latency: a table from `effnet nas latency-table` (the deployed runtime's ms)")
    p.add_argument("--allow-foreign-table", action="store_true",
                   help="use a latency table measured on another CPU (its milliseconds will not hold here)")
    p.add_argument("--target-madds", "--target-ms", "--target", type=float, default=0.0, dest="target", metavar="T",
                   help="T in the cost's unit: MAdds, or ms with --cost latency (default: the skeleton's reference "
                        "network's cost, i.e. the hand-designed base's)")
    p.add_argument("--trials", "--evaluations", type=int, default=100, dest="evaluations", metavar="N",
                   help="candidates to train (default 100)")
    p.add_argument("--seed", type=int, default=0, help="the strategy's seed and every trial's (default 0)")
    p.add_argument("--round", type=int, default=0, dest="round_size",
                   help="candidates per round (default: the strategy's batch, at least one per worker)")
    p.add_argument("--controller-lr", type=float, default=None,
                   help="ppo/reinforce: the controller's Adam learning rate (default 3.5e-3 for ppo, 1e-2 for "
                        "reinforce, tuned for 100-200 candidates; NASNet's was 3.5e-4)")
    p.add_argument("--entropy-weight", type=float, default=None,
                   help="ppo/reinforce: the entropy bonus (default 1e-3 for ppo, 3e-3 for reinforce; NASNet's 1e-5)")
    p.add_argument("--controller-batch", type=int, default=None,
                   help="ppo/reinforce: candidates per controller update (default 5; NASNet's 10)")
    add_budget_and_runner(p, backends=("local", "ray", "tune"))
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = SearchConfig(skeleton=args.skeleton, strategy=args.strategy, reward=args.reward, cost=args.cost,
                          target=args.target, latency_table=args.latency_table,
                          allow_foreign_table=args.allow_foreign_table, evaluations=args.evaluations, seed=args.seed,
                          controller_lr=args.controller_lr, entropy_weight=args.entropy_weight,
                          controller_batch=args.controller_batch)
    if args.backend == "tune":
        summary = run_search_on_tune(config, budget_from(args), options_from(args))
    else:
        summary = run_search(config, budget_from(args), options_from(args), round_size=args.round_size)
    best = summary["best"]
    print_table(f"{args.strategy} search on the {args.skeleton} skeleton: best of {summary['evaluations']} candidates "
                f"({summary['unique_networks']} distinct)",
                ["reward", "proxy top-1", "cost", "params", "network"],
                [(f"{best['reward']:.4f}", f"{best['top1']:.2f}", f"{best['cost']:.4g}", f"{best['params']:,}",
                  "\n".join(best["network"]))])
    measured = summary.get("measured_latency")
    if measured:
        print_table("predicted by the latency table against measured in its runtime (batch 1, exported whole)",
                    ["network", "proxy top-1", "predicted ms", "measured ms"],
                    [(row["network"], "-" if row.get("top1") is None else f"{row['top1']:.2f}",
                      f"{row['predicted_ms']:.3f}", f"{row['measured_ms']:.3f}") for row in measured])
    print(f"target T = {summary['target']:.4g} ({args.cost}); candidates: {args.out / 'candidates.jsonl'}, "
          f"plot: {args.out / 'search.png'}, found network: {args.out / 'best.json'} "
          f"(`effnet show {args.out / 'best.json'}`, `effnet lab scaling {args.out / 'best.json'}`)")
    return 0

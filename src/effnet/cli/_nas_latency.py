"""`effnet nas latency-table SKELETON` and `effnet nas latency-check TABLE`: a latency model of
a deployed runtime for the search (MnasNet's objective; docs/search.md)."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from ..search.latency_build import build_table
from ..search.latency_check import GOAL_MAPE, GOAL_TAU, check_table
from ..search.latency_runtime import PRECISIONS, RUNTIMES, Target
from ..search.latency_table import LatencyTable
from ..search.space import SKELETONS


def configure_table(p: argparse.ArgumentParser) -> None:
    p.add_argument("skeleton", choices=tuple(SKELETONS), help="the space whose pieces are measured (fmnist or b0)")
    p.add_argument("--runtime", choices=RUNTIMES, default="executorch",
                   help="executorch (XNNPACK, the phone-like setting; default), onnx (onnxruntime) or openvino")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32", help="fp32 (default) or the runtime's int8")
    p.add_argument("--threads", type=int, default=1, help="the runtime's threads (default 1; batch is always 1)")
    p.add_argument("--fit-networks", type=int, default=200,
                   help="whole networks measured to fit the correction (default 200; 0: the plain sum)")
    p.add_argument("--seed", type=int, default=0, help="the seed that samples those networks (default 0)")
    p.add_argument("--workers", type=int, default=2,
                   help="processes that export side by side (default 2); timing is always one piece at a time")
    p.add_argument("--out", type=Path, required=True, help="the table (JSON); its work folder is OUT.parts/")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    p.set_defaults(func=run_table)


def run_table(args: argparse.Namespace) -> int:
    target = Target(args.runtime, args.precision, args.threads)
    table = build_table(args.skeleton, target, args.out, fit_networks=args.fit_networks, seed=args.seed,
                        workers=args.workers, progress=args.progress, command=shlex.join(["effnet", *sys.argv[1:]]))
    fit = table.correction
    print(f"{len(table.entries)} pieces of the {args.skeleton} space in {table.meta['runtime']} ({args.precision}, "
          f"{args.threads} thread(s)) on {table.meta['cpu']['model']}: {args.out}")
    if fit:
        print(f"correction from {fit['networks']} whole networks: {fit['a']:.3f} x sum + {fit['b'] * 1000:.1f} us x "
              f"pieces + {fit['c'] * 1000:.1f} us")
    return 0


def configure_check(p: argparse.ArgumentParser) -> None:
    p.add_argument("table", type=Path, metavar="TABLE", help="a table from `effnet nas latency-table`")
    p.add_argument("--networks", type=int, default=100, help="sampled networks, measured whole (default 100)")
    p.add_argument("--seed", type=int, default=1, help="their seed; not the table's own (default 1)")
    p.add_argument("--workers", type=int, default=2, help="processes that export side by side (default 2)")
    p.add_argument("--out", type=Path, required=True, help="folder for latency_check.{json,md,png}")
    p.add_argument("--allow-foreign-table", action="store_true",
                   help="use a table measured on another CPU (its milliseconds will not hold here)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    p.set_defaults(func=run_check)


def run_check(args: argparse.Namespace) -> int:
    table = LatencyTable.load(args.table, allow_foreign=args.allow_foreign_table)
    summary = check_table(table, args.out, networks=args.networks, seed=args.seed, workers=args.workers,
                          progress=args.progress)
    tau, mape = summary["tau"], summary["mape"]
    print(f"{args.networks} networks: Kendall tau {tau['table']:.3f} (plain sum {tau['table_sum']:.3f}, MAdds "
          f"{tau['madds']:.3f}); MAPE {mape['table']:.1f}% (plain sum {mape['table_sum']:.1f}%, MAdds' best line "
          f"{mape['madds_best_line']:.1f}%); goals tau >= {GOAL_TAU}, MAPE <= {GOAL_MAPE:g}%: "
          f"{'met' if summary['goals_met'] else 'not met'}")
    print(f"report: {args.out / 'latency_check.md'}, plot: {args.out / 'latency_check.png'}")
    return 0

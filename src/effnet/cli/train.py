"""`effnet train`: train or fine-tune from a config file with `section.key=value` overrides.

Under ``torchrun --nproc_per_node=N -m effnet train ...`` the same command runs DDP.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..train.config_files import config_yaml, load_config, load_for_resume
from ..train.loop import NonFiniteLossError, train


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train", help="train or fine-tune a model (the paper's recipe by default)",
        description="Train from a YAML/TOML config; any key can be overridden as section.key=value, "
                    "e.g. `effnet train --config configs/fashion_mnist_small.yaml train.epochs=5`.")
    p.add_argument("overrides", nargs="*", metavar="section.key=value", help="config overrides")
    p.add_argument("--config", type=Path, help="YAML or TOML config (default: the recipe's defaults)")
    p.add_argument("--data-dir", help="where the dataset lives (sets data.root)")
    p.add_argument("--resume", nargs="?", const="", metavar="RUN",
                   help="continue a run exactly from RUN/last.pt (RUN: a run folder or checkpoint; "
                        "without RUN: the folder named by run.out_dir/run.name)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    overrides = list(args.overrides) + ([f"data.root={args.data_dir}"] if args.data_dir else [])
    resume = None
    if args.resume is not None:
        config, folder = load_for_resume(args.resume or None, args.config, overrides)
        resume = folder.path
    else:
        config = load_config(args.config, overrides)
    if args.print_config:
        print(config_yaml(config), end="")
        return 0
    try:
        result = train(config, resume=resume)
    except NonFiniteLossError as error:
        print(f"effnet train: stopped: {error}", file=sys.stderr)
        return 3
    if result.status == "sigterm":
        return 143  # 128 + SIGTERM: the run was stopped, not finished
    return 0

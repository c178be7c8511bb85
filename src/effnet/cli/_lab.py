"""Arguments shared by the laboratory's subcommands."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..lab.bases import lab_base
from ..lab.experiments import LabOptions
from ..lab.dispatch import cpu_count
from ..lab.trials import Budget

# The default proxy budget of a trial, sized so that the default scaling experiment (3 seeds x
# (base + 3 phis x 4 methods)) finishes within 90 minutes on 2 CPU cores (docs/lab.md has the
# measured time); the coefficient search uses the same budget so its ranking carries over.
DEFAULTS = {"epochs": 3, "train_subset": 10000, "minival": 4000}
# --quick: a few minutes on 2 CPU cores; used by the tests and the demo.
QUICK = {"epochs": 2, "train_subset": 5000, "minival": 1000}


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("base", nargs="?", default="fmnist_lab",
                   help="baseline: fmnist_lab (default), a registered model or a training preset")
    p.add_argument("--resolution", type=int, default=None, help="baseline resolution (default 16, below 28 px)")
    add_budget_and_runner(p)


def add_budget_and_runner(p: argparse.ArgumentParser, backends: tuple[str, ...] = ("local", "ray")) -> None:
    """The proxy budget of a trial and where trials run (shared with `effnet search`)."""
    p.add_argument("--epochs", type=int, default=None, help="proxy training epochs per trial")
    p.add_argument("--train-subset", type=int, default=None, help="train on the first N images (0: all)")
    p.add_argument("--minival", type=int, default=None,
                   help="images held out from train to rank trials (at least 1: trials are never ranked on test)")
    p.add_argument("--batch-size", type=int, default=64, help="per trial (default 64: more steps in a short proxy)")
    p.add_argument("--seeds", type=int, default=None, help="seeds per network")
    add_runner(p, backends)
    p.add_argument("--quick", action="store_true", help="a few-minute version (tiny budget, one seed)")


def add_runner(p: argparse.ArgumentParser, backends: tuple[str, ...] = ("local", "ray")) -> None:
    """Where trials run, where the data is and where the results go."""
    p.add_argument("--workers", type=int, default=0,
                   help="trials run at once, local processes or Ray tasks (default: one per CPU core, "
                        "each with one thread: small proxy nets use cores better side by side)")
    p.add_argument("--backend", choices=backends, default="local",
                   help="local processes (default), Ray tasks" + (", or Ray Tune trials" if "tune" in backends else ""))
    p.add_argument("--ray-address", default=None, help="join a Ray cluster ('auto' or ray://host:port)")
    p.add_argument("--data-dir", default=None, help="Fashion-MNIST folder (default: the Debian package's)")
    p.add_argument("--out", type=Path, required=True, help="experiment folder (journal, tables, plots)")


def budget_from(args: argparse.Namespace, defaults: dict[str, int] = DEFAULTS) -> Budget:
    chosen = {**defaults, **(QUICK if args.quick else {})}
    for key in ("epochs", "train_subset", "minival"):
        if getattr(args, key) is not None:
            chosen[key] = getattr(args, key)
    return Budget(epochs=chosen["epochs"], train_subset=chosen["train_subset"], minival=chosen["minival"],
                  batch_size=args.batch_size)


def base_from(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    return lab_base(args.base, resolution=args.resolution)


def options_from(args: argparse.Namespace) -> LabOptions:
    return LabOptions(out_dir=args.out, workers=args.workers or cpu_count(), backend=args.backend, ray_address=args.ray_address,
                      data_dir=args.data_dir)

"""Progressive learning (EfficientNetV2 section 4.2) against fixed-size training on
Fashion-MNIST: the same network, epochs and data, two seeds each; wall time and test top-1.

    .venv/bin/python benchmarks/progressive_fashion_mnist.py [--epochs 6] [--train-subset 20000]

Fixed-size training runs every epoch at the last stage's settings (28 px, RandAugment
magnitude 10, the network's dropout 0.2); progressive learning (the paper's schedule, 4
stages, V2-S's regularisation: no mixup) starts at 14 px, magnitude 5, dropout 0.1 and grows
linearly to them.
Both use per-image transforms (progressive learning resizes each image for its stage), select
the best epoch on 5,000 minival images held out of train, and evaluate the test set once.
Each finished run is appended to ``OUT/finished_runs.json``, so an interrupted benchmark
continues with the runs it lacks (a new OUT starts afresh). When all have run, writes
``benchmarks/results/progressive_fmnist/`` (through ``effnet.bench.results``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from effnet.atomic import write_atomic
from effnet.bench.results import write_result
from effnet.train.config_files import load_config
from effnet.train.loop import train

REPO = Path(__file__).resolve().parent.parent


def overrides(arm: str, seed: int, args: argparse.Namespace, out: Path) -> list[str]:
    common = [
        f"model.name={args.model}", "model.channels_last=true", "data.batch_augment=false",
        "data.auto_augment=randaugment", "data.randaugment_m=10", f"data.train_subset={args.train_subset}",
        f"train.epochs={args.epochs}", "train.batch_size=128", "train.ema_decay=0", "model.bn_momentum=0.1",
        "schedule.warmup_epochs=0.5", f"train.seed={seed}", f"train.threads={args.threads}",
        f"run.out_dir={out}", f"run.name={arm}-seed{seed}", "run.progress=false", "run.tensorboard=false",
    ]
    if arm == "progressive":
        return common + ["progressive.stages=4", "progressive.schedule=paper", "progressive.min_image_size=14",
                         "progressive.randaugment_min=5", "progressive.dropout_min=0.1"]
    return common + ["progressive.stages=0"]  # fixed: the last stage's settings from the start


def run_one(arm: str, seed: int, args: argparse.Namespace, out: Path) -> dict:
    config = load_config(REPO / "configs" / "fashion_mnist_small.yaml", overrides(arm, seed, args, out))
    start = time.perf_counter()
    result = train(config)
    wall = time.perf_counter() - start
    return {"arm": arm, "seed": seed, "wall_s": wall, "test_top1": result.test["top1"] if result.test else None,
            "best_minival_top1": result.best_top1, "epochs": result.epoch,
            "train_seconds": sum(r["epoch_time_s"] for r in result.history)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="fmnist_s0")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--train-subset", type=int, default=20000)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "progressive")
    parser.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results",
                        help="results folder (default: benchmarks/results)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    journal = args.out / "finished_runs.json"
    done = json.loads(journal.read_text())["runs"] if journal.is_file() else []
    record: dict[str, object] = {}
    for seed in range(args.seeds):
        for arm in ("fixed", "progressive"):
            if any(r["arm"] == arm and r["seed"] == seed for r in done):
                continue
            print(f"== {arm}, seed {seed}", flush=True)
            done.append(run_one(arm, seed, args, args.out))
            record = {"command": " ".join([sys.executable, *sys.argv]),
                      "settings": vars(args) | {"out": str(args.out), "results": str(args.results)}, "runs": done}
            write_atomic(journal, json.dumps(record, indent=2) + "\n")
    lines = [f"`{args.model}` on Fashion-MNIST, {args.epochs} epochs on {args.train_subset:,} training images "
             f"(5,000 minival held out), batch 128, {args.threads} threads; test top-1 of the best minival epoch.",
             "", "| arm | seed | wall (s) | train time (s) | test top-1 |", "|---|---|---|---|---|"]
    for r in sorted(done, key=lambda r: (r["arm"], r["seed"])):
        lines.append(f"| {r['arm']} | {r['seed']} | {r['wall_s']:.0f} | {r['train_seconds']:.0f} | {r['test_top1']:.2f}% |")
    for arm in ("fixed", "progressive"):
        runs = [r for r in done if r["arm"] == arm]
        if runs:
            lines.append(f"| **{arm} mean** | {len(runs)} | {statistics.mean(r['wall_s'] for r in runs):.0f} | "
                         f"{statistics.mean(r['train_seconds'] for r in runs):.0f} | "
                         f"{statistics.mean(r['test_top1'] for r in runs):.2f}% |")
    markdown = "\n".join(lines) + "\n"
    print(markdown)
    record = record or (json.loads(journal.read_text()) if journal.is_file() else {"runs": done})
    print(f"written: {write_result('progressive_fmnist', record, markdown, root=args.results, threads=args.threads)}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

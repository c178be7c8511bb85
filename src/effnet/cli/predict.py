"""`effnet predict PATH...`: top-k classes for images and folders, as a table or JSON.

Exit status: 0 when every file got an answer, 1 when any file failed (each failure is one
line on stderr), 2 for usage errors (unknown model, bad weights, bad options).
"""

from __future__ import annotations

import argparse
import sys

import torch

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from ..deploy.runtime_choice import RUNTIMES, choose_runtime, runtime_model
from ..optimize import deployed_model
from ..device import resolve_device
from ..predict import PredictionRecord, expand_inputs, iter_predictions
from ._format import console, print_json
from ._model import add_model_arguments, load_model, model_label, positive_int


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("predict", help="top-k classes for images or folders of images")
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders (searched recursively)")
    add_model_arguments(p)
    p.add_argument("--top-k", type=positive_int, default=5, metavar="K", help="classes per image (default 5)")
    p.add_argument("--json", action="store_true", help="print a JSON list, one record per file")
    p.add_argument("--batch-size", type=positive_int, default=16, metavar="N", help="images per batch (default 16)")
    p.add_argument("--runtime", choices=RUNTIMES, default="auto",
                   help="auto (default): on the CPU, the fastest installed fp32 runtime measured at this batch "
                        "size (once per model and machine, then remembered; the choice is printed on stderr); "
                        "onnx: export once (cached) and run in onnxruntime; openvino: the same export in "
                        "OpenVINO (openvino-bf16: bfloat16 where the CPU has it); executorch: an XNNPACK .pte in "
                        "ExecuTorch (cached; executorch-int8: quantised by PT2E, never chosen by auto); torch: "
                        "PyTorch with BN folded and channels_last")
    p.add_argument("--accuracy-budget", type=float, default=None, metavar="POINTS",
                   help="with --runtime auto: also int8 and bf16 forms compete, and the fastest whose top-1 stays "
                        "within POINTS of fp32's wins (scored on a run's minival split, else by agreement with fp32 "
                        "on photo crops; as `effnet optimize`, measured once and remembered)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)  # a ValueError here is a usage error (exit 2)
    loaded = load_model(args.model, args.weights)
    label = model_label(loaded, args.weights)
    items = expand_inputs(args.paths)
    # auto measures at the batch size this run will use.
    batch = max(1, min(args.batch_size, len(items)))
    log = lambda line: print(f"effnet: {line}", file=sys.stderr)  # noqa: E731
    if args.accuracy_budget is not None:
        if args.runtime != "auto" or device.type != "cpu":
            raise ValueError("--accuracy-budget chooses among CPU runtimes: use it with --runtime auto on the CPU")
        model = deployed_model(loaded, args.weights, budget=args.accuracy_budget, batch=batch, log=log)
    else:
        model = runtime_model(loaded, choose_runtime(args.runtime, device), cache=args.weights is not None,
                              batch=batch, log=log)
    err = Console(stderr=True)
    records: list[PredictionRecord] = []
    # A bar only helps when it can redraw (a terminal) and there is more than one batch to wait for.
    with Progress(TextColumn("predict"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=err, transient=True,
                  disable=not err.is_terminal or len(items) <= args.batch_size) as progress:
        task = progress.add_task("predict", total=len(items))
        try:
            for record in iter_predictions([item for _, item in items], model, args.top_k, args.batch_size, device):
                if not record.ok:
                    # print() not err.print(): rich would wrap long paths onto a second line.
                    print(f"effnet predict: {record.error}", file=sys.stderr, flush=True)
                records.append(record)
                progress.advance(task)
        except torch.OutOfMemoryError:
            raise ValueError(f"out of memory on {device} with --batch-size {args.batch_size}; "
                             "try a smaller batch size or --device cpu") from None
    failed = sum(not r.ok for r in records)
    if args.json:
        print_json([r.to_dict() for r in records])
    else:
        _print_records(records, label, args.top_k)
    if failed:
        print(f"effnet predict: {failed} of {len(records)} files failed", file=sys.stderr)
    return 1 if failed else 0


def _print_records(records: list[PredictionRecord], label: str, top_k: int) -> None:
    good = [r for r in records if r.ok]
    if not good:
        return
    table = Table(title=f"{label}: top-{top_k}")
    table.add_column("file")
    table.add_column("class")
    table.add_column("index", justify="right")
    table.add_column("probability", justify="right")
    for r in good:
        # One row per file, one line per class inside it: the top-k stay together.
        table.add_row(r.path, "\n".join(s.name for s in r.top_k), "\n".join(str(s.index) for s in r.top_k),
                      "\n".join(f"{s.probability:.1%}" for s in r.top_k), end_section=True)
    console().print(table)

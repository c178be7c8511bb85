"""`effnet optimize`: the fastest deployable form of a model (runtime x precision) whose
accuracy stays within a budget, measured here; writes the chosen file(s) and a report."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from rich.console import Console

from ..data.transforms import input_size
from ..optimize import (available_candidates, choose, is_run, keep_files, parse_candidates, run_minival, unlabelled,
                        write_report)
from ..optimize.report import COLUMNS, table_rows
from ..train.qat import is_qat_run
from ._format import print_table
from ._model import WEIGHTS_HELP, load_model, model_label, positive_int


def _candidates(text: str) -> list:  # type: ignore[type-arg]
    try:
        return parse_candidates(text)
    except ValueError as error:  # argparse shows an ArgumentTypeError's words, not a ValueError's
        raise argparse.ArgumentTypeError(str(error)) from None


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("optimize", help="the fastest runtime and precision that keeps the model's accuracy "
                                               "(measured on its own minival split)")
    p.add_argument("model", nargs="?", default=None,
                   help="a registered model name; optional when --weights names its network")
    p.add_argument("--weights", default=None, help=WEIGHTS_HELP)
    p.add_argument("--accuracy-budget", type=float, default=None, metavar="POINTS",
                   help="points of top-1 the chosen form may lose against eager fp32 (e.g. 0.3); int8 and bf16 forms "
                        "compete only with a budget. Without one: fp32 forms only")
    p.add_argument("--out", type=Path, required=True, help="folder for the chosen file(s) and report.{md,json}")
    p.add_argument("--batch", type=positive_int, default=32, help="the batch size to be fastest at (default 32)")
    p.add_argument("--threads", type=positive_int, default=None, help="intra-op threads (default: all cores)")
    p.add_argument("--candidates", type=_candidates, default=None,
                   help="comma-separated, e.g. 'onnx int8,openvino int8' (default: every installed runtime x "
                        f"precision; here: {', '.join(c.name for c in available_candidates())})")
    p.add_argument("--images", default=None, metavar="FOLDER",
                   help="for weights that are not a training run: unlabelled images to calibrate on and to score "
                        "agreement with fp32 on (default: crops of scikit-image's sample photos)")
    p.add_argument("--limit", type=positive_int, default=None, help="score on at most this many minival images")
    p.add_argument("--data-dir", default=None, help="where the run's dataset lives, if not where it trained")
    p.add_argument("--no-cache", action="store_true", help="measure again even if this choice was made before here")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    model = load_model(args.model, args.weights).eval()
    resolution = input_size(model)
    if is_run(args.weights):
        if args.images:
            raise ValueError("--images is for weights that are not a training run; a run is scored on its minival split")
        evaluation = run_minival(args.weights, model, limit=args.limit, data_dir=args.data_dir)
    else:
        evaluation = unlabelled(model, resolution, folder=args.images)
    console = Console(stderr=True)
    with console.status("optimize") as status:
        choice = choose(model, evaluation, resolution=resolution, batch=args.batch, budget=args.accuracy_budget,
                        candidates=args.candidates, threads=args.threads, use_cache=not args.no_cache,
                        qat_run=Path(args.weights) if args.weights and is_qat_run(args.weights) else None,
                        step=lambda text: status.update(f"optimize: {text}"))
    try:
        kept = keep_files(choice, args.out)
        report = write_report(choice, args.out, model=model_label(model, args.weights), threads=args.threads, kept=kept)
    finally:
        if choice.workdir is not None:
            shutil.rmtree(choice.workdir, ignore_errors=True)
    print_table(f"{model_label(model, args.weights)} at batch {choice.batch}", list(COLUMNS), table_rows(choice),
                caption=f"score: {choice.evaluation}, {choice.images_scored} images")
    where = ", ".join(str(p) for p in kept) or "eager PyTorch fp32 is fastest: keep the weights as they are"
    print(f"chosen: {choice.chosen.name} -> {where}; report: {report}")
    return 0

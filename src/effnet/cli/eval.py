"""`effnet eval RUN`: top-1, top-5, per-class accuracy and a confusion-matrix PNG for a
trained model: a run folder (its model.safetensors: best minival checkpoint, EMA weights when
EMA was on), that file, or the run's last.pt. The work is ``effnet.train.run_eval``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..train.run_eval import CONFUSION_PLOT, EVAL_REPORT, evaluate_run
from ._format import print_table
from ._model import positive_int


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("eval", help="evaluate a trained checkpoint: top-1/5, per class, confusion matrix")
    p.add_argument("run", metavar="RUN", help="a run folder of `effnet train` (its model.safetensors), that file, "
                                                "or the run's last.pt")
    p.add_argument("--split", default="test", choices=("test", "minival"), help="what to evaluate on")
    p.add_argument("--data-dir", help="where the dataset lives (default: as in the run's config)")
    p.add_argument("--batch-size", type=positive_int, default=None, help="evaluation batch size")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: cuda when available")
    p.add_argument("--out", type=Path, default=None, help="folder for eval.json and confusion.png "
                                                          "(default: RUN/eval-SPLIT)")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    evaluation = evaluate_run(args.run, split=args.split, data_dir=args.data_dir, batch_size=args.batch_size,
                              device=args.device)
    out = evaluation.save(args.out)
    report = evaluation.report()
    if args.json:
        print(json.dumps({k: v for k, v in report.items() if k != "confusion"}, indent=2))
        return 0
    result, split = evaluation.result, evaluation.split
    print(f"{evaluation.given}: {evaluation.network} ({evaluation.weights} weights) on {split}, {result.count} images")
    print_table(f"{split} accuracy", ["metric", "value"], [("top-1", f"{result.top1:.2f}%"), ("top-5", f"{result.top5:.2f}%"),
                                                           ("loss", f"{result.loss:.4f}")])
    if evaluation.quantized:
        print_table(f"quantisation-aware run on {split}", ["model", "top-1", "top-5"],
                    [("float weights (above)", f"{result.top1:.2f}%", f"{result.top5:.2f}%")]
                    + [({"fake_quant": "fake-quantised graph", "int8": "int8 (convert_pt2e)"}[name], f"{q.top1:.2f}%",
                        f"{q.top5:.2f}%") for name, q in evaluation.quantized.items()])
    print_table("per-class accuracy", ["class", "top-1", "images"],
                [(name, f"{acc:.2f}%", int(n)) for name, acc, n in
                 zip(evaluation.classes, result.per_class, result.confusion.sum(1).tolist())])
    print(f"confusion matrix: {out / CONFUSION_PLOT}; numbers: {out / EVAL_REPORT}")
    return 0

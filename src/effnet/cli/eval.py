"""`effnet eval RUN`: top-1, top-5, per-class accuracy and a confusion-matrix PNG for a
trained model: a run folder (its model.safetensors: best minival checkpoint, EMA weights when
EMA was on), that file, or the run's last.pt."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from matplotlib.figure import Figure
from torch import nn

from ..device import resolve_device
from ..factory import create_model
from ..train.config import Config, run_config
from ..train.data import build_eval_loader
from ..train.evaluate import evaluate
from ..weights import fetch_weights
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


def plot_confusion(confusion, classes, path: Path, title: str) -> None:  # type: ignore[no-untyped-def]
    counts = confusion.numpy()
    rates = counts / counts.sum(1, keepdims=True).clip(min=1)
    size = max(5.0, 0.55 * len(classes) + 2)
    fig = Figure(figsize=(size + 1, size))  # no pyplot: no global figure state, no GUI backend
    ax = fig.subplots()
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=60, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if len(classes) <= 20:
        for i in range(len(classes)):
            for j in range(len(classes)):
                ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if rates[i, j] > 0.5 else "black")
    fig.colorbar(image, ax=ax, fraction=0.046, label="fraction of the true class")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def _load(run: Path) -> tuple[nn.Module, Config, str]:
    """The run's model, its training config, and which weights they are (EMA or raw)."""
    loaded = fetch_weights(run)
    provenance = (loaded.meta.provenance if loaded.meta is not None else None) or {}
    config = run_config(run, provenance)
    model = create_model(None, weights=loaded)
    return model, config, str(provenance.get("weights", "raw"))


def run(args: argparse.Namespace) -> int:
    path = Path(args.run)
    model, config, weights = _load(path)
    if args.data_dir:
        config.data = dataclasses.replace(config.data, root=args.data_dir)
    if args.batch_size:
        config.train = dataclasses.replace(config.train, eval_batch_size=args.batch_size)
    loader, classes = build_eval_loader(config, args.split, model.preprocessing)
    device = resolve_device(args.device)
    result = evaluate(model.to(device), loader, model.num_classes, device=device)
    folder = path if path.is_dir() else path.parent
    file = path
    out = args.out or folder / f"eval-{args.split}"
    out.mkdir(parents=True, exist_ok=True)
    report = {"run": str(file), "split": args.split, "weights": weights, "images": result.count,
              "top1": result.top1, "top5": result.top5, "loss": result.loss,
              "per_class": dict(zip(classes, result.per_class)), "confusion": result.confusion.tolist()}
    (out / "eval.json").write_text(json.dumps(report, indent=2))
    plot_confusion(result.confusion, classes, out / "confusion.png",
                   f"{folder.name} ({model.spec.name}): top-1 {result.top1:.2f}% on {args.split}")
    if args.json:
        print(json.dumps({k: v for k, v in report.items() if k != "confusion"}, indent=2))
        return 0
    print(f"{file}: {model.spec.name} ({weights} weights) on {args.split}, {result.count} images")
    print_table(f"{args.split} accuracy", ["metric", "value"], [("top-1", f"{result.top1:.2f}%"), ("top-5", f"{result.top5:.2f}%"),
                                      ("loss", f"{result.loss:.4f}")])
    print_table("per-class accuracy", ["class", "top-1", "images"],
                [(name, f"{acc:.2f}%", int(n)) for name, acc, n in
                 zip(classes, result.per_class, result.confusion.sum(1).tolist())])
    print(f"confusion matrix: {out / 'confusion.png'}; numbers: {out / 'eval.json'}")
    return 0

"""`effnet eval RUN`: top-1, top-5, per-class accuracy and a confusion-matrix PNG for a
trained checkpoint (the EMA weights by default)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ._format import print_table


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("eval", help="evaluate a trained checkpoint: top-1/5, per class, confusion matrix")
    p.add_argument("checkpoint", help="a run folder (uses best.pt) or a checkpoint file")
    p.add_argument("--split", default="test", choices=("test", "minival"), help="what to evaluate on")
    p.add_argument("--no-ema", action="store_true", help="evaluate the raw weights instead of the EMA")
    p.add_argument("--data-dir", help="where the dataset lives (default: as in the run's config)")
    p.add_argument("--batch-size", type=int, default=None, help="evaluation batch size")
    p.add_argument("--out", type=Path, default=None, help="folder for eval.json and confusion.png "
                                                          "(default: RUN/eval-SPLIT)")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.set_defaults(func=run)


def plot_confusion(confusion, classes, path: Path, title: str) -> None:  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = confusion.numpy()
    rates = counts / counts.sum(1, keepdims=True).clip(min=1)
    size = max(5.0, 0.55 * len(classes) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
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
    plt.close(fig)


def run(args: argparse.Namespace) -> int:
    import dataclasses

    import torch

    from ..preprocessing import Preprocessing
    from ..train.build import model_from_checkpoint
    from ..train.checkpoint import BEST, load_checkpoint
    from ..train.config import from_dict
    from ..train.data import build_eval_loader
    from ..train.evaluate import evaluate

    path = Path(args.checkpoint)
    file = path / BEST if path.is_dir() else path
    checkpoint = load_checkpoint(file)
    config = from_dict(checkpoint["config"])
    if args.data_dir:
        config.data = dataclasses.replace(config.data, root=args.data_dir)
    if args.batch_size:
        config.train = dataclasses.replace(config.train, eval_batch_size=args.batch_size)
    use_ema = not args.no_ema and checkpoint.get("ema") is not None
    model = model_from_checkpoint(checkpoint, use_ema=use_ema)
    pre = Preprocessing.from_dict(checkpoint["preprocessing"])
    loader, batch_augment, classes = build_eval_loader(config, args.split, pre)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    prepare = None if batch_augment is None else (lambda images: batch_augment(images, train=False))
    result = evaluate(model, loader, model.num_classes, device=device, prepare=prepare)

    out = args.out or file.parent / f"eval-{args.split}"
    out.mkdir(parents=True, exist_ok=True)
    weights = "EMA" if use_ema else "raw"
    report = {"checkpoint": str(file), "split": args.split, "weights": weights, "images": result.count,
              "top1": result.top1, "top5": result.top5, "loss": result.loss,
              "per_class": dict(zip(classes, result.per_class)), "confusion": result.confusion.tolist()}
    (out / "eval.json").write_text(json.dumps(report, indent=2))
    plot_confusion(result.confusion, classes, out / "confusion.png",
                   f"{file.parent.name} ({weights}): top-1 {result.top1:.2f}% on {args.split}")
    if args.json:
        print(json.dumps({k: v for k, v in report.items() if k != "confusion"}, indent=2))
        return 0
    print_table(f"{file} ({weights} weights) on {args.split}: {result.count} images",
                ["metric", "value"], [("top-1", f"{result.top1:.2f}%"), ("top-5", f"{result.top5:.2f}%"),
                                      ("loss", f"{result.loss:.4f}")])
    print_table("per-class accuracy", ["class", "top-1", "images"],
                [(name, f"{acc:.2f}%", int(n)) for name, acc, n in
                 zip(classes, result.per_class, result.confusion.sum(1).tolist())])
    print(f"confusion matrix: {out / 'confusion.png'}; numbers: {out / 'eval.json'}")
    return 0

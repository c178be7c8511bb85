"""A trained run on a split: top-1, top-5, loss, per-class accuracy and the confusion matrix
of a run's model (its folder, its ``model.safetensors`` or its ``last.pt``), on data prepared
the way its training validated; written as ``eval.json`` and a confusion-matrix PNG. What
``effnet eval`` prints. A quantisation-aware run also reports its fake-quantised graph and its
int8 model."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from ..figures import new_figure, save_png
from ..device import resolve_device
from ..factory import create_model
from ..weights import RunFolder, fetch_weights
from .config import Config
from .config_files import config_of_run
from .data import build_eval_loader
from .evaluate import EvalResult, evaluate
from .qat import int8_model, is_qat_run, load_qat_graph

EVAL_REPORT = "eval.json"
CONFUSION_PLOT = "confusion.png"


@dataclass(frozen=True)
class RunEvaluation:
    given: Path                      # the path the run was given as
    folder: RunFolder
    network: str                     # the spec's name
    weights: str                     # EMA | raw
    split: str                       # test | minival
    classes: tuple[str, ...]
    result: EvalResult
    # A quantisation-aware run: its fake-quantised graph and its int8 model (convert_pt2e) too.
    quantized: dict[str, EvalResult] = dataclasses.field(default_factory=dict)

    def report(self) -> dict[str, Any]:
        """Everything measured, as plain data (what ``eval.json`` holds)."""
        r = self.result
        return {"run": str(self.given), "split": self.split, "weights": self.weights, "images": r.count,
                "top1": r.top1, "top5": r.top5, "loss": r.loss, "per_class": dict(zip(self.classes, r.per_class)),
                "confusion": r.confusion.tolist(),
                **({"quantized": {name: q.summary() for name, q in self.quantized.items()}} if self.quantized else {})}

    def save(self, out: str | os.PathLike[str] | None = None) -> Path:
        """Write ``eval.json`` and ``confusion.png`` into ``out`` (default: RUN/eval-SPLIT);
        the folder they are in."""
        folder = Path(out) if out is not None else self.folder.evaluation(self.split)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / EVAL_REPORT).write_text(json.dumps(self.report(), indent=2))
        plot_confusion(self.result.confusion, self.classes, folder / CONFUSION_PLOT,
                       f"{self.folder.name} ({self.network}): top-1 {self.result.top1:.2f}% on {self.split}")
        return folder


def evaluate_run(run: str | os.PathLike[str], *, split: str = "test", data_dir: str | None = None,
                 batch_size: int | None = None, device: str | None = None) -> RunEvaluation:
    """Evaluate the model of ``run`` on ``split`` (test, or the run's own minival split).
    ``data_dir`` and ``batch_size`` replace the run's ``data.root`` and ``train.eval_batch_size``."""
    given = Path(run)
    model, config, weights = _load(given)
    if data_dir:
        config.data = dataclasses.replace(config.data, root=data_dir)
    if batch_size:
        config.train = dataclasses.replace(config.train, eval_batch_size=batch_size)
    loader, classes = build_eval_loader(config, split, model.preprocessing)
    on = resolve_device(device)
    result = evaluate(model.to(on), loader, model.num_classes, device=on)
    quantized = {}
    if is_qat_run(given):
        graph = load_qat_graph(given)
        for name, graph_model in (("fake_quant", graph), ("int8", int8_model(graph))):
            quantized[name] = evaluate(graph_model.to(on), loader, model.num_classes, device=on)
    return RunEvaluation(given, RunFolder.of(given), model.spec.name, weights, split, tuple(classes), result, quantized)


def _load(run: Path) -> tuple[nn.Module, Config, str]:
    """The run's model, its training config, and which weights they are (EMA or raw)."""
    loaded = fetch_weights(run)
    provenance = (loaded.meta.provenance if loaded.meta is not None else None) or {}
    config = config_of_run(run, provenance)
    model = create_model(None, weights=loaded)
    return model, config, str(provenance.get("weights", "raw"))


def plot_confusion(confusion, classes, path: Path, title: str) -> None:  # type: ignore[no-untyped-def]
    """The confusion matrix as rates of each true class, with the counts written in when
    there are few classes."""
    counts = confusion.numpy()
    rates = counts / counts.sum(1, keepdims=True).clip(min=1)
    size = max(5.0, 0.55 * len(classes) + 2)
    fig = new_figure(size + 1, size)
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
    save_png(fig, path)


__all__ = ["CONFUSION_PLOT", "EVAL_REPORT", "RunEvaluation", "evaluate_run", "plot_confusion"]

"""A run folder of ``effnet train`` as one value: where each of its files is, how it is named,
how a path a user gives (the folder, its ``model.safetensors``, its ``last.pt``) resolves to
it, and the metadata and provenance its trained model carries::

    RUN/config.yaml        the resolved training config
    RUN/metrics.jsonl      one record per epoch (and metrics.csv; tensorboard/ when installed)
    RUN/last.pt            everything needed to continue the run exactly
    RUN/model.safetensors  the trained model: the best minival epoch (EMA weights when EMA is
                           on), with its network, preprocessing, classes and provenance
    RUN/eval-SPLIT/        what ``effnet eval`` writes (eval.json, confusion.png)

It lives in ``weights/`` because a run folder is weights like any other: every reader of
weights takes one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ..preprocessing import Preprocessing
from ..spec import NetworkSpec
from .errors import WeightsError
from .metadata import WeightsMeta

CONFIG_FILE = "config.yaml"
LAST_CHECKPOINT = "last.pt"
MODEL_FILE = "model.safetensors"
METRICS_FILE = "metrics.jsonl"
METRICS_CSV_FILE = "metrics.csv"
TENSORBOARD_DIR = "tensorboard"


@dataclass(frozen=True)
class RunFolder:
    """The folder of one training run and the place of each file in it."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @classmethod
    def under(cls, out_dir: str | os.PathLike[str], name: str) -> RunFolder:
        """The run called ``name`` in ``out_dir`` (``run.out_dir`` / ``run.name`` of a config)."""
        return cls(Path(out_dir) / name)

    @staticmethod
    def default_name(model: str, started: datetime) -> str:
        """The name of a run whose config gives none: the model and when it started."""
        return f"{model}-{started:%Y%m%d-%H%M%S}"

    @classmethod
    def of(cls, path: str | os.PathLike[str]) -> RunFolder:
        """The run a user's path names: the folder itself, or the folder of one of its files
        (``model.safetensors``, ``last.pt``)."""
        path = Path(path)
        return cls(path if path.is_dir() else path.parent)

    @classmethod
    def resume_point(cls, path: str | os.PathLike[str]) -> tuple[RunFolder, Path]:
        """(run folder, checkpoint to continue from) for a run folder (its ``last.pt``) or a
        checkpoint file in one."""
        path = Path(path)
        checkpoint = path / LAST_CHECKPOINT if path.is_dir() else path
        if not checkpoint.is_file():
            raise FileNotFoundError(f"nothing to resume: {checkpoint} does not exist")
        return cls(checkpoint.parent), checkpoint

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def config(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def last(self) -> Path:
        return self.path / LAST_CHECKPOINT

    @property
    def model(self) -> Path:
        return self.path / MODEL_FILE

    @property
    def metrics(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def metrics_csv(self) -> Path:
        return self.path / METRICS_CSV_FILE

    @property
    def tensorboard(self) -> Path:
        return self.path / TENSORBOARD_DIR

    def evaluation(self, split: str) -> Path:
        """Where ``effnet eval`` writes its report on ``split`` unless told otherwise."""
        return self.path / f"eval-{split}"

    def trained_model(self) -> Path:
        """``model.safetensors``, or a WeightsError that says why there is none."""
        if self.model.is_file():
            return self.model
        if self.config.is_file() or self.last.is_file():
            raise WeightsError(f"run folder {self.path} has no {MODEL_FILE} yet: it is written after the first "
                               f"validated epoch (continue the run with `effnet train --resume {self.path}`, or "
                               f"pass {self.last})")
        raise WeightsError(f"{self.path} is a folder but not a run folder of `effnet train` (no {MODEL_FILE}); "
                           "pass a weights file, a registered tag or a run folder")

    def model_meta(self, spec: NetworkSpec, *, classes: Sequence[str], preprocessing: Preprocessing,
                   provenance: dict[str, Any]) -> WeightsMeta:
        """The metadata of this run's ``model.safetensors``."""
        return trained_model_meta(spec, classes=classes, preprocessing=preprocessing,
                                  source=f"effnet train, run {self.name}", provenance=provenance)


def trained_model_meta(spec: NetworkSpec, *, classes: Sequence[str], preprocessing: Preprocessing, source: str,
                       provenance: dict[str, Any]) -> WeightsMeta:
    """What a model trained by ``effnet train`` carries, whether read from ``model.safetensors``
    or out of a ``last.pt``: its network, preprocessing, class names and provenance."""
    return WeightsMeta(
        architecture=spec.name, padding=spec.padding, bn_eps=spec.bn_eps, preprocessing=preprocessing,
        num_classes=spec.num_classes, class_names=tuple(classes) if len(classes) == spec.num_classes else None,
        spec=spec, source=source, provenance=provenance,
    )


def selection_provenance(config: dict[str, Any], *, dataset: str, epoch: int, step: int, ema: bool,
                         minival_images: int, val_top1: float | None) -> dict[str, Any]:
    """How the model in ``model.safetensors`` was chosen: its config, the epoch and step it
    was taken at, which weights (EMA or raw), and the split it was selected on (minival,
    or the test set when the run held none out). ``test_top1`` is filled in by the final test."""
    return {"config": config, "dataset": dataset, "epochs": epoch, "steps": step, "weights": "EMA" if ema else "raw",
            "selected_on": "minival" if minival_images else "test", "minival_images": minival_images,
            "val_top1": val_top1, "test_top1": None}


def with_test(provenance: Mapping[str, Any] | None, test: Mapping[str, float]) -> dict[str, Any]:
    """``provenance`` with the final test's top-1 and top-5."""
    return {**(provenance or {}), "test_top1": test["top1"], "test_top5": test["top5"]}


__all__ = ["CONFIG_FILE", "LAST_CHECKPOINT", "METRICS_CSV_FILE", "METRICS_FILE", "MODEL_FILE", "RunFolder",
           "TENSORBOARD_DIR", "selection_provenance", "trained_model_meta", "with_test"]

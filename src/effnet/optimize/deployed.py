"""``--runtime auto --accuracy-budget X`` in ``effnet predict`` and ``effnet serve``: the model
as the fastest form within the budget runs it (:func:`effnet.optimize.choose.choose`, measured
once per model, CPU and batch, then remembered), looking like any effnet classifier to callers."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from torch import nn

from ..data.transforms import input_size
from ..deploy.runtime import RuntimeModel
from ..train.qat import is_qat_run
from .choose import Choice, choose
from .evaluation import is_run, run_minival, unlabelled


def describe(choice: Choice) -> str:
    rows = ", ".join(f"{r.name} {r.images_per_s:,.0f} img/s {r.score:.2f}%" for r in
                     sorted(choice.rows, key=lambda r: -r.images_per_s))
    how = "measured earlier on this machine" if choice.cached else "measured now"
    return (f"runtime auto with an accuracy budget of {choice.budget} points chose {choice.chosen.name} "
            f"(batch {choice.batch}; {rows}; score: {choice.evaluation}; {how})")


def deployed_model(model: nn.Module, weights: str | os.PathLike[str] | None, *, budget: float, batch: int,
                   threads: int | None = None, log: Callable[[str], None] | None = None) -> nn.Module:
    """``model`` in the fastest form whose score is within ``budget`` points of eager fp32's:
    scored on the run's minival split when ``weights`` is a training run, else by agreement
    with fp32 on photo crops. The result carries ``runtime_name`` (e.g. ``onnx int8``) and the
    ``optimize_choice``."""
    resolution = input_size(model)
    evaluation = run_minival(weights, model) if is_run(weights) else unlabelled(model, resolution)
    qat_run = Path(weights) if weights is not None and is_qat_run(weights) else None
    choice = choose(model.eval(), evaluation, resolution=resolution, batch=batch, budget=budget, threads=threads,
                    qat_run=qat_run)
    if choice.workdir is not None:  # every runtime has read its file into memory
        shutil.rmtree(choice.workdir, ignore_errors=True)
    if log is not None:
        log(describe(choice))
    assert choice.built is not None
    deployed = RuntimeModel(choice.built.run, model)
    deployed.runtime_name = choice.chosen.name  # type: ignore[assignment]
    deployed.optimize_choice = choice  # type: ignore[assignment]
    deployed.source_model = model  # type: ignore[assignment]  # for what needs PyTorch (class activation maps)
    return deployed


__all__ = ["deployed_model", "describe"]

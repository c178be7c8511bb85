"""The training loop: the official recipe (paper section 5.2) around any effnet model.

One call, :func:`train`, runs a whole training job from a :class:`~effnet.train.config.Config`
and writes a run folder (``effnet.weights.RunFolder``): the resolved config, metrics, a
resumable ``last.pt`` and ``model.safetensors``, the trained model that predict, export,
eval and serve read when given the run folder. Its three parts, in the shape of ConvNeXt's
``main.py``/``engine.py``: preparing the run (``prepare.py``), running the epochs
(``epochs.py``, one epoch's steps in ``engine.py``), and what the run yields
(``selection.py``).

Model selection never sees the test set unless asked to (``data.minival=0``, which the run
warns about): the best epoch is chosen on a minival split held out of the training data, and
the test set is evaluated once at the end, on that epoch's model.

Exact resume: the shuffle order depends only on (seed, epoch), loaders draw from their own
generators, and checkpoints carry every RNG state, so with ``num_workers=0`` and
deterministic kernels a run stopped at any step and resumed ends with bit-identical
weights. SIGTERM saves ``last.pt`` at the current step and returns; a non-finite loss
raises :class:`NonFiniteLossError` before anything is written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..spec import NetworkSpec
from .config import Config, ConfigError, validate_once
from .distributed import cleanup, setup
from .engine import NonFiniteLossError
from .epochs import run_epochs
from .prepare import prepare_run
from .selection import final_test


@dataclass
class TrainResult:
    run_dir: Path
    status: str                      # finished | sigterm | time_limit
    epoch: int                       # epochs completed
    global_step: int
    best_top1: float
    history: list[dict[str, Any]] = field(default_factory=list)
    test: dict[str, float] | None = None


def train(config: Config, *, resume: str | os.PathLike[str] | None = None,
          spec: NetworkSpec | None = None) -> TrainResult:
    """Run (or, with ``resume`` = a run folder or checkpoint, continue) a training job.

    ``spec`` trains that network instead of ``config.model.name`` (experiments that generate
    specs); its ``num_classes`` and ``in_chans`` still come from the data.
    """
    validate_once(config)  # a config set up in code, or changed after loading, is checked here
    if spec is not None and config.model.weights is not None:
        raise ConfigError("pass either a spec or model.weights, not both")
    info = setup(config.train.device)
    try:
        run = prepare_run(config, info, resume, spec)
        status, history = run_epochs(run)
        p = run.position
        result = TrainResult(run.folder.path, status, p.epoch, p.global_step, p.best_top1, history)
        if status != "sigterm" and run.data.test_loader is not None and config.train.final_test and history:
            result.test = final_test(run)
        return result
    finally:
        cleanup(info)


__all__ = ["NonFiniteLossError", "TrainResult", "train"]

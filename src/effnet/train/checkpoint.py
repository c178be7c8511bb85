"""``last.pt``: everything needed to continue a run exactly, written atomically.

It is a dict of tensors and plain values: model, optimizer, scheduler, EMA and (fp16)
grad-scaler state, every random-number generator (as tensors), the position in training
(epoch, batches done in that epoch, global step), the best metric so far, the resolved
config, and the network, classes and preprocessing (so ``effnet.weights`` can read the model
out of it too). It is read back with ``torch.load(weights_only=True)`` (no pickled code runs
on load). Where it lives in a run folder: ``effnet.weights.RunFolder``.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..atomic import write_atomic
from ..preprocessing import Preprocessing
from ..spec_json import spec_to_dict
from ..weights import load_pickle


def save_checkpoint(path: str | os.PathLike[str], payload: dict[str, Any]) -> Path:
    """Written atomically: a reader (or a crash) sees either the old file or the new one,
    never half of one."""
    return write_atomic(path, lambda partial: torch.save(payload, partial))


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (tensors and plain data only)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    data = load_pickle(path, map_location=map_location)
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a checkpoint of `effnet train` (it holds a {type(data).__name__}, not a dict)")
    return data


RESUME_KEYS = ("model", "optimizer", "scheduler", "scaler", "rng", "epoch", "batches_done", "global_step",
               "best_top1", "epoch_stats", "config")


def check_resumable(checkpoint: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """A ValueError unless ``checkpoint`` holds everything a resume needs."""
    missing = [key for key in RESUME_KEYS if key not in checkpoint]
    if missing:
        raise ValueError(f"{path} cannot be resumed: it is not a last.pt of `effnet train` (it lacks "
                         f"{', '.join(missing)})")


EMPTY_EPOCH = {"loss_sum": 0.0, "correct": 0, "seen": 0, "seconds": 0.0}


@dataclass
class Position:
    """Where training stands: epochs and batches done, steps taken, the best validation
    top-1 so far and the running sums of the epoch in progress."""

    epoch: int = 0
    batches_done: int = 0
    global_step: int = 0
    best_top1: float = -1.0
    epoch_stats: dict[str, float] = field(default_factory=lambda: dict(EMPTY_EPOCH))


def checkpoint_payload(*, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, scaler: Any,
                       ema: nn.Module | None, position: Position, config: dict[str, Any],
                       classes: tuple[str, ...], preprocessing: Preprocessing) -> dict[str, Any]:
    """Everything ``last.pt`` holds (see the module docstring)."""
    return {
        "model": model.state_dict(), "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
        "ema": ema.state_dict() if ema is not None else None, "rng": rng_state(),
        "epoch": position.epoch, "batches_done": position.batches_done, "global_step": position.global_step,
        "best_top1": position.best_top1, "epoch_stats": dict(position.epoch_stats), "config": config,
        "spec": spec_to_dict(model.spec), "classes": list(classes), "preprocessing": preprocessing.to_dict(),
    }


def position_from(checkpoint: dict[str, Any]) -> Position:
    return Position(checkpoint["epoch"], checkpoint["batches_done"], checkpoint["global_step"],
                    checkpoint["best_top1"], dict(checkpoint["epoch_stats"]))


def rng_state() -> dict[str, Any]:
    """Every generator a training step may draw from, stored as tensors and numbers."""
    np_state = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": {"version": py_version, "internal": torch.tensor(py_internal, dtype=torch.int64),
                   "gauss": py_gauss},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["internal"].tolist()), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


__all__ = ["EMPTY_EPOCH", "Position", "check_resumable", "checkpoint_payload", "load_checkpoint", "position_from",
           "rng_state", "save_checkpoint", "set_rng_state"]

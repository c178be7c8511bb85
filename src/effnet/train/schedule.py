"""Learning-rate schedules, stepped once per optimizer step, built on ``LambdaLR``.

``tf_exponential`` is the official one (``main.py`` + ``utils.build_learning_rate``):
``lr = base * decay_rate ** floor(step / (decay_epochs * steps_per_epoch))`` (staircase),
with a linear warm-up ``lr = base * step / warmup_steps`` over the first ``warmup_epochs``.
As in the official code the staircase counts from step 0, not from the end of the warm-up.
``cosine`` is the usual alternative: linear warm-up, then a half cosine down to
``min_lr_ratio * base``.
"""

from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import LambdaLR

SCHEDULES = ("tf_exponential", "cosine", "constant")
IMAGES_PER_LR = 256  # the paper's lr 0.256 at batch 4096 is 0.016 per 256 images


def scaled_lr(lr_per_256: float, global_batch: int) -> float:
    """Linear scaling: the learning rate for ``global_batch`` images per step."""
    return lr_per_256 * global_batch / IMAGES_PER_LR


class LrFactor:
    """The schedule as a picklable callable (step -> multiplier of the base lr), so that
    ``LambdaLR.state_dict`` records its settings."""

    def __init__(self, kind: str, steps_per_epoch: int, epochs: float, warmup_epochs: float = 5.0,
                 decay_epochs: float = 2.4, decay_rate: float = 0.97, min_lr_ratio: float = 0.0) -> None:
        if kind not in SCHEDULES:
            raise ValueError(f"unknown schedule {kind!r}; choose one of {SCHEDULES}")
        if steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
        self.kind = kind
        self.warmup_steps = int(round(warmup_epochs * steps_per_epoch))
        self.decay_steps = max(1, int(decay_epochs * steps_per_epoch))
        self.total_steps = max(1, int(round(epochs * steps_per_epoch)))
        self.decay_rate = decay_rate
        self.min_lr_ratio = min_lr_ratio

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return step / self.warmup_steps
        if self.kind == "tf_exponential":
            return self.decay_rate ** (step // self.decay_steps)
        if self.kind == "cosine":
            span = max(1, self.total_steps - self.warmup_steps)
            progress = min(1.0, (step - self.warmup_steps) / span)
            return self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
        return 1.0


def build_scheduler(optimizer: torch.optim.Optimizer, kind: str, *, steps_per_epoch: int, epochs: float,
                    warmup_epochs: float = 5.0, decay_epochs: float = 2.4, decay_rate: float = 0.97,
                    min_lr_ratio: float = 0.0) -> LambdaLR:
    """A per-step scheduler; call ``scheduler.step()`` after every ``optimizer.step()``."""
    factor = LrFactor(kind, steps_per_epoch, epochs, warmup_epochs, decay_epochs, decay_rate, min_lr_ratio)
    return LambdaLR(optimizer, factor)


__all__ = ["IMAGES_PER_LR", "LrFactor", "SCHEDULES", "build_scheduler", "scaled_lr"]

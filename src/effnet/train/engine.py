"""One epoch of training and the evaluation between epochs: the steps of the loop, without
the bookkeeping around them (checkpoints, metrics, resume), which stays in ``loop.py``.

The shape follows torchvision's reference scripts and ConvNeXt's ``engine.py``: a
``train_one_epoch`` over the loader and an ``evaluate`` over normalised batches.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .batch_augment import BatchAugment
from .checkpoint import Position
from .distributed import DistInfo, any_rank, any_ranks
from .evaluate import EvalResult, autocast_context, evaluate
from .progress_bar import EpochProgress
from .progressive import BatchMix


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or Inf; the message says where and what to try."""


@dataclass
class Engine:
    """The pieces one training step uses."""

    model: nn.Module                 # the network (its parameters are the optimiser's)
    forward_model: nn.Module         # what runs the forward pass: the model, its DDP wrapper or compiled form
    criterion: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler
    ema: nn.Module | None
    device: torch.device
    info: DistInfo
    amp: str = "none"
    channels_last: bool = False
    clip_grad_norm: float | None = None
    batch_augment: BatchAugment | None = None
    mix: BatchMix | None = None      # mixup / cutmix (progressive learning's stages)

    def train_step(self, images: torch.Tensor, labels: torch.Tensor, position: Position) -> tuple[float, int]:
        """One optimiser step; (loss, correct top-1 count) of the batch."""
        images = images.to(self.device, non_blocking=True)
        labels = labels.to(self.device, non_blocking=True)
        if self.batch_augment is not None:
            images = self.batch_augment(images, train=True)
        targets = labels
        if self.mix is not None and self.mix.active:
            images, targets = self.mix(images, labels)  # soft targets; accuracy still on the true labels
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast_context(self.device, self.amp):
            logits = self.forward_model(images)
        loss = self.criterion(logits.float(), targets)
        loss_value = float(loss.detach())
        if any_rank(not math.isfinite(loss_value), self.info, self.device):
            raise NonFiniteLossError(
                f"the loss became {loss_value} at epoch {position.epoch + 1}, step {position.global_step + 1} "
                f"(lr {self.scheduler.get_last_lr()[0]:.3g}); stopped without saving, so the run's last.pt still "
                "holds the last good state. Try a lower optim.lr_per_256, a longer schedule.warmup_epochs, "
                "optim.clip_grad_norm, or train.amp=none.")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.clip_grad_norm:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.clip_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        return loss_value, int((logits.detach().argmax(1) == labels).sum())

    def train_one_epoch(self, loader: Any, position: Position, bar: EpochProgress,
                        should_stop: Callable[[], tuple[bool, bool]]) -> str:
        """Steps over ``loader`` from ``position`` (which it advances), until the epoch ends
        ("done") or ``should_stop`` (asked after every step, on every rank together) says
        ("sigterm", "time_limit")."""
        stats = position.epoch_stats
        tic = time.monotonic() - stats["seconds"]
        for images, labels in loader:
            loss, correct = self.train_step(images, labels, position)
            n = labels.shape[0]
            position.global_step += 1
            position.batches_done += 1
            stats["loss_sum"] += loss * n
            stats["correct"] += correct
            stats["seen"] += n
            stats["seconds"] = time.monotonic() - tic
            seen = max(1, stats["seen"])
            bar.update(stats["loss_sum"] / seen, 100.0 * stats["correct"] / seen,
                       seen * self.info.world_size / max(stats["seconds"], 1e-9))
            sigterm, out_of_time = should_stop()
            if sigterm or out_of_time:
                return "sigterm" if sigterm else "time_limit"
        return "done"

    def evaluate(self, model: nn.Module, loader: Any) -> EvalResult:
        return evaluate(model, loader, self.model.num_classes, device=self.device, amp=self.amp,
                        channels_last=self.channels_last, dist_info=self.info)

    def stop_check(self, stop_requested: Callable[[], bool], deadline: float) -> Callable[[], tuple[bool, bool]]:
        """Decided on every rank together, so that no rank waits forever in the next collective."""
        def check() -> tuple[bool, bool]:
            sigterm, late = any_ranks([stop_requested(), time.monotonic() > deadline], self.info, self.device)
            return bool(sigterm), bool(late)
        return check


__all__ = ["Engine", "NonFiniteLossError"]

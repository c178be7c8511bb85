"""Evaluation: loss, top-1, top-5, per-class accuracy and the confusion matrix, summed over
every process of a distributed run (each evaluates its own shard, nothing is counted twice)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from .distributed import DistInfo, all_reduce_sum


@dataclass
class EvalResult:
    loss: float
    top1: float          # percent
    top5: float          # percent (top-k with k = min(5, classes))
    count: int
    confusion: torch.Tensor  # (true, predicted) counts

    @property
    def per_class(self) -> list[float]:
        """Accuracy (percent) of each true class; NaN for a class with no examples."""
        totals = self.confusion.sum(1).double()
        return (100.0 * self.confusion.diag().double() / totals).tolist()

    def summary(self) -> dict[str, float]:
        return {"loss": self.loss, "top1": self.top1, "top5": self.top5}


def autocast_context(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    if amp == "none":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], num_classes: int, *,
             device: torch.device, amp: str = "none", channels_last: bool = False,
             dist_info: DistInfo = DistInfo()) -> EvalResult:
    """Run ``model`` in eval mode over ``batches`` of normalised images (what
    ``effnet.train.data.EvalBatches`` hands out); the model's mode is restored after."""
    was_training = model.training
    model.eval()
    criterion = nn.CrossEntropyLoss(reduction="sum")
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    top5_hits = torch.zeros((), dtype=torch.int64, device=device)
    confusion = torch.zeros((num_classes, num_classes), dtype=torch.int64, device=device)
    k = min(5, num_classes)
    try:
        for images, labels in batches:
            images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            with autocast_context(device, amp):
                logits = model(images)
            logits = logits.float()
            loss_sum += criterion(logits, labels).double()
            top = logits.topk(k, dim=1).indices
            top5_hits += (top == labels.view(-1, 1)).any(1).sum()
            confusion += torch.bincount(labels * num_classes + top[:, 0],
                                        minlength=num_classes * num_classes).view(num_classes, num_classes)
    finally:
        model.train(was_training)
    packed = torch.cat([loss_sum.view(1), top5_hits.double().view(1), confusion.double().flatten()])
    packed = all_reduce_sum(packed, dist_info).cpu()
    confusion = packed[2:].round().long().view(num_classes, num_classes)
    count = int(confusion.sum())
    if count == 0:
        raise ValueError("the evaluation set is empty")
    return EvalResult(loss=float(packed[0]) / count, top1=100.0 * int(confusion.diag().sum()) / count,
                      top5=100.0 * float(packed[1]) / count, count=count, confusion=confusion)


__all__ = ["EvalResult", "autocast_context", "evaluate"]

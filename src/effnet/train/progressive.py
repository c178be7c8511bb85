"""Progressive learning (EfficientNetV2, paper section 4.2, Algorithm 1): the run is split
into M equal stages; image size and regularisation (RandAugment magnitude, mixup and cutmix
alpha, dropout) grow linearly from the first stage to the last.

Two schedules (shared/reference/efficientnetv2.md section 4):

- ``paper``: stage i of M takes ``v0 + (ve - v0) * i / (M - 1)`` for every value, starting at
  the minimum; mixup only; dropout scheduled too.
- ``official``: google/automl ``main.py``: image size ``ibase + (size - ibase) * (i + 1) / M``
  (the first stage is already a quarter of the way up), RandAugment and mixup/cutmix by
  ``linspace`` over the stages, dropout **fixed** (its schedule is commented out there), and
  mixup and cutmix each on half of the batch when both are on.

Evaluation always runs at the final size. The stage of an epoch is a pure function of the
epoch, so a run resumed in any stage rebuilds exactly the loader and mixing it had.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torchvision.transforms import v2 as T

SCHEDULES = ("paper", "official")


@dataclass(frozen=True)
class Stage:
    index: int
    image_size: int
    randaugment_m: int         # torchvision's RandAugment takes whole magnitudes (of 31 bins)
    mixup_alpha: float
    cutmix_alpha: float
    dropout: float

    def describe(self, stages: int) -> str:
        return (f"stage {self.index + 1}/{stages}: {self.image_size} px, RandAugment magnitude {self.randaugment_m}, "
                f"mixup {self.mixup_alpha:.3g}, cutmix {self.cutmix_alpha:.3g}, dropout {self.dropout:.3g}")


def _lerp(start: float, end: float, fraction: float) -> float:
    return start + (end - start) * fraction


def plan(*, stages: int, schedule: str, size: int, min_size: int, randaugment: tuple[float, float],
         mixup: tuple[float, float], cutmix: tuple[float, float], dropout: tuple[float, float]) -> list[Stage]:
    """The stages of a progressive run; each pair is (first stage's value, last stage's)."""
    if schedule not in SCHEDULES:
        raise ValueError(f"progressive.schedule must be one of {SCHEDULES}, got {schedule!r}")
    if stages < 2:
        raise ValueError(f"progressive learning needs at least 2 stages, got {stages}")
    out = []
    for i in range(stages):
        linear = i / (stages - 1)  # the paper's Algorithm 1, and the official linspace
        grow = (i + 1) / stages if schedule == "official" else linear
        out.append(Stage(
            index=i,
            image_size=int(_lerp(min_size, size, grow)),
            randaugment_m=int(round(_lerp(*randaugment, linear))),
            mixup_alpha=_lerp(*mixup, linear),
            cutmix_alpha=_lerp(*cutmix, linear) if schedule == "official" else 0.0,
            dropout=dropout[1] if schedule == "official" else _lerp(*dropout, linear),
        ))
    return out


def stage_of(epoch: int, epochs: int, stages: int) -> int:
    """Equal-length stages: epoch e of E is in stage floor(e * M / E)."""
    return min(stages - 1, epoch * stages // epochs)


class BatchMix:
    """mixup and cutmix (torchvision ``v2.MixUp`` / ``v2.CutMix``) on a batch: one of them on
    the whole batch, or, with both on, mixup on the first half and cutmix on the second (the
    official code). Returns the images and soft targets for the cross entropy."""

    def __init__(self, num_classes: int, mixup_alpha: float, cutmix_alpha: float) -> None:
        self.num_classes = num_classes
        self.mixup = T.MixUp(alpha=mixup_alpha, num_classes=num_classes) if mixup_alpha > 0 else None
        self.cutmix = T.CutMix(alpha=cutmix_alpha, num_classes=num_classes) if cutmix_alpha > 0 else None

    @property
    def active(self) -> bool:
        return self.mixup is not None or self.cutmix is not None

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.mixup is not None and self.cutmix is not None and images.shape[0] >= 4:
            half = images.shape[0] // 2
            a, ya = self.mixup(images[:half], labels[:half])
            b, yb = self.cutmix(images[half:], labels[half:])
            return torch.cat([a, b]), torch.cat([ya, yb])
        mix = self.mixup or self.cutmix
        return mix(images, labels) if mix is not None else (images, labels)


def set_dropout(model: nn.Module, rate: float) -> None:
    """The classifier's dropout (the one ``NetworkSpec.dropout`` sets), for the schedule."""
    dropout = getattr(model, "dropout", None)
    if isinstance(dropout, nn.Dropout):
        dropout.p = float(rate)


__all__ = ["BatchMix", "SCHEDULES", "Stage", "plan", "set_dropout", "stage_of"]

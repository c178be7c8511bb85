"""Spec -> ``nn.Module``: the one builder for every network effnet knows.

``ConvNet`` is the classifier (stem, stages, head, pool, dropout, FC) with the timm-style
API (``forward_features``, ``forward_head``, ``reset_classifier``, ``feature_info``);
``FeatureNet`` is the same trunk returning the reduction-2/4/8/16/32 maps for detection
backbones.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from .nn import BLOCKS, BlockArgs, ConvBnAct
from .preprocessing import Preprocessing
from .spec import NetworkSpec, SpecError


@dataclass(frozen=True)
class FeatureInfo:
    """One feature map a trunk can hand out: its channels, reduction and module name."""

    num_chs: int
    reduction: int
    module: str


def feature_taps(spec: NetworkSpec) -> list[tuple[int, FeatureInfo]]:
    """The last layer at each reduction (2, 4, 8, ...), as (point, info) with point -1 for
    the stem (taken before any stem pool) and i for stage i."""
    points = [(-1, FeatureInfo(spec.stem.channels, spec.stem.stride, "stem"))]
    reduction = spec.stem.reduction
    for i, stage in enumerate(spec.stages):
        reduction *= stage.stride
        points.append((i, FeatureInfo(stage.out_channels, reduction, f"stages.{i}")))
    last_per_reduction: dict[int, tuple[int, FeatureInfo]] = {}
    for point, info in points:
        last_per_reduction[info.reduction] = (point, info)
    return [last_per_reduction[r] for r in sorted(last_per_reduction)]


def drop_path_rates(spec: NetworkSpec, rate: float) -> list[list[float]]:
    """Official schedule: block i of n (counted over the whole network) drops with
    probability rate * i / n."""
    n = spec.num_blocks
    rates, index = [], 0
    for stage in spec.stages:
        rates.append([rate * (index + j) / n for j in range(stage.repeats)])
        index += stage.repeats
    return rates


class _Trunk(nn.Module):
    """Stem, optional stem pool and stages."""

    def __init__(self, spec: NetworkSpec, num_stages: int | None = None) -> None:
        super().__init__()
        self.spec = spec
        settings = {"bn_eps": spec.bn_eps, "bn_momentum": spec.bn_momentum, "padding": spec.padding}
        self.stem = ConvBnAct(spec.in_chans, spec.stem.channels, spec.stem.kernel, spec.stem.stride,
                              act=spec.activation, **settings)  # type: ignore[arg-type]
        self.stem_pool = nn.MaxPool2d(3, 2, padding=1) if spec.stem.pool else nn.Identity()
        stages = []
        for stage, rates in zip(spec.stages[:num_stages], drop_path_rates(spec, spec.drop_path_rate)):
            blocks = []
            for j in range(stage.repeats):
                in_ch, out_ch = stage.block_channels(j)
                args = BlockArgs(in_ch, out_ch, stage.kernel, stage.block_stride(j), stage.expand_ratio,
                                 stage.se_ratio, stage.skip, spec.activation, drop_path_rate=rates[j],
                                 **settings)  # type: ignore[arg-type]
                blocks.append(BLOCKS[stage.kind](args))
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        self.grad_checkpointing = False

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each stage's activations in the backward pass instead of storing them:
        less training memory, same results, about one extra forward of compute."""
        self.grad_checkpointing = enable

    def _run_stage(self, stage: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if self.grad_checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(stage, x, use_reentrant=False)
        return stage(x)

    def _init_weights(self) -> None:
        """TF init: conv N(0, sqrt(2 / fan_out)), dense U(+-1/sqrt(out)), zero biases."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels // module.groups
                nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / fan_out))
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                bound = 1.0 / math.sqrt(module.out_features)
                nn.init.uniform_(module.weight, -bound, bound)
                nn.init.zeros_(module.bias)


class ConvNet(_Trunk):
    """A classifier built from a :class:`~effnet.spec.NetworkSpec`."""

    def __init__(self, spec: NetworkSpec) -> None:
        super().__init__(spec)
        if spec.head.channels:
            self.head: nn.Module = ConvBnAct(spec.stages[-1].out_channels, spec.head.channels, 1,
                                             act=spec.activation, bn_eps=spec.bn_eps,
                                             bn_momentum=spec.bn_momentum, padding=spec.padding)
        else:
            self.head = nn.Identity()
        self.num_features = spec.num_features
        self.global_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
        self.dropout = nn.Dropout(spec.dropout)
        self.classifier = self._make_classifier(spec.num_classes)
        self.feature_info = [info for _, info in feature_taps(spec)]
        # Set when weights are loaded: how inputs must be prepared, and what the classes are.
        self.preprocessing: Preprocessing | None = None
        self.class_names: tuple[str, ...] | None = None
        self._init_weights()

    @property
    def num_classes(self) -> int:
        return self.classifier.out_features if isinstance(self.classifier, nn.Linear) else 0

    def _make_classifier(self, num_classes: int) -> nn.Module:
        return nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def reset_classifier(self, num_classes: int) -> None:
        """A fresh classifier for ``num_classes`` (0 removes it: the model returns features)."""
        self.classifier = self._make_classifier(num_classes)
        if isinstance(self.classifier, nn.Linear):
            bound = 1.0 / math.sqrt(max(num_classes, 1))
            nn.init.uniform_(self.classifier.weight, -bound, bound)
            nn.init.zeros_(self.classifier.bias)
        self.spec = self.spec.replace(num_classes=num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The unpooled feature map after the head conv."""
        x = self.stem_pool(self.stem(x))
        for stage in self.stages:
            x = self._run_stage(stage, x)
        return self.head(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.global_pool(x)
        if pre_logits:
            return x
        return self.classifier(self.dropout(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class FeatureNet(_Trunk):
    """The trunk alone, returning a list of feature maps (reduction 2, 4, 8, 16, 32 ...).

    Stages after the last requested map are not built, so every parameter is used.
    """

    def __init__(self, spec: NetworkSpec, out_indices: Sequence[int] | None = None) -> None:
        taps = feature_taps(spec)
        indices = list(range(len(taps))) if out_indices is None else [int(i) for i in out_indices]
        bad = [i for i in indices if not -len(taps) <= i < len(taps)]
        if bad or not indices:
            raise SpecError(
                f"out_indices {list(out_indices or [])} do not fit {spec.name}: it has {len(taps)} "
                f"feature levels (reductions {[info.reduction for _, info in taps]}); use indices 0..{len(taps) - 1}"
            )
        indices = sorted({i % len(taps) for i in indices})
        chosen = [taps[i] for i in indices]
        super().__init__(spec, num_stages=max(point for point, _ in chosen) + 1)
        self.out_indices = indices
        self.feature_info = [info for _, info in chosen]
        self._tap_stem = chosen[0][0] == -1
        self._tap_stages = [point for point, _ in chosen if point >= 0]
        self._init_weights()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features: list[torch.Tensor] = []
        x = self.stem(x)
        if self._tap_stem:
            features.append(x)
        x = self.stem_pool(x)
        for i, stage in enumerate(self.stages):
            x = self._run_stage(stage, x)
            if i in self._tap_stages:
                features.append(x)
        return features


def build_model(spec: NetworkSpec, *, features_only: bool = False,
                out_indices: Sequence[int] | None = None) -> nn.Module:
    """Build the modules for a spec (nothing else: no weights, no global state)."""
    if features_only:
        return FeatureNet(spec, out_indices)
    if out_indices is not None:
        raise SpecError("out_indices only applies with features_only=True")
    return ConvNet(spec)

"""The vocabulary: a ConvNet written as data.

A network is a frozen :class:`NetworkSpec` value: a stem, a tuple of stages (each a
:class:`StageSpec`, one row of the paper's Table 1), a head, and the settings that the
official code keeps in global flags (activation, batch norm, padding, resolution, dropout,
stochastic depth). Scaling (``effnet.scaling``) maps a spec to a new spec, counting
(``effnet.counting``) reads a spec, and the builder (``effnet.model``) turns a spec into
modules. Nothing here imports torch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

BlockKind = Literal["mbconv", "fused", "ds", "bottleneck", "conv"]
BLOCK_KINDS: tuple[str, ...] = ("mbconv", "fused", "ds", "bottleneck", "conv")
ACTIVATIONS: tuple[str, ...] = ("silu", "relu", "relu6", "hard_swish")
PADDINGS: tuple[str, ...] = ("same", "symmetric")


class SpecError(ValueError):
    """A spec that cannot describe a network; the message says which field and why."""


@dataclass(frozen=True)
class StageSpec:
    """One stage: ``repeats`` identical blocks (the first one carries the stride).

    ``kind`` selects the block:

    - ``mbconv``: inverted residual (MobileNetV2, EfficientNet). ``expand_ratio`` is
      relative to the block input.
    - ``fused``: Fused-MBConv (EfficientNetV2): the 1x1 expansion and the depthwise kxk are
      one regular kxk conv; with ``expand_ratio`` 1 that conv is the whole block (BN, act),
      else a linear 1x1 projection follows.
    - ``ds``: depthwise-separable conv (MobileNetV1): depthwise kxk, then pointwise 1x1,
      each with BN and activation.
    - ``bottleneck``: ResNet bottleneck (1x1, kxk with the stride, 1x1). ``expand_ratio`` is
      the inner width relative to the block *output* (0.25 in ResNet-50).
    - ``conv``: a regular kxk conv with BN and activation (MnasNet's "regular conv").

    ``se_ratio`` > 0 adds squeeze-and-excitation whose width is taken from the block input
    (official code). ``skip`` allows the identity shortcut when shapes allow it.
    """

    kind: BlockKind = "mbconv"
    repeats: int = 1
    kernel: int = 3
    stride: int = 1
    expand_ratio: float = 1.0
    in_channels: int = 32
    out_channels: int = 16
    se_ratio: float = 0.0
    skip: bool = True

    def __post_init__(self) -> None:
        if self.kind not in BLOCK_KINDS:
            raise SpecError(f"stage kind {self.kind!r} is unknown; choose one of {BLOCK_KINDS}")
        _check_int("repeats", self.repeats, minimum=1)
        _check_int("kernel", self.kernel, minimum=1)
        if self.kernel % 2 == 0:
            raise SpecError(f"kernel must be odd, got {self.kernel}")
        _check_int("stride", self.stride, minimum=1)
        _check_int("in_channels", self.in_channels, minimum=1)
        _check_int("out_channels", self.out_channels, minimum=1)
        if not self.expand_ratio > 0:
            raise SpecError(f"expand_ratio must be > 0, got {self.expand_ratio}")
        if not 0 <= self.se_ratio <= 1:
            raise SpecError(f"se_ratio must be in [0, 1], got {self.se_ratio}")

    def block_channels(self, index: int) -> tuple[int, int]:
        """(in, out) channels of block ``index`` of this stage: only the first changes width."""
        return (self.in_channels if index == 0 else self.out_channels, self.out_channels)

    def block_stride(self, index: int) -> int:
        return self.stride if index == 0 else 1


@dataclass(frozen=True)
class StemSpec:
    """The first conv (and, for ResNet, a 3x3/2 max pool after it)."""

    channels: int = 32
    kernel: int = 3
    stride: int = 2
    pool: bool = False

    def __post_init__(self) -> None:
        _check_int("stem.channels", self.channels, minimum=1)
        _check_int("stem.kernel", self.kernel, minimum=1)
        _check_int("stem.stride", self.stride, minimum=1)

    @property
    def reduction(self) -> int:
        return self.stride * (2 if self.pool else 1)


@dataclass(frozen=True)
class HeadSpec:
    """Final 1x1 conv (``channels`` = 0 for none, as in ResNet and MobileNetV1), pool, FC."""

    channels: int = 1280

    def __post_init__(self) -> None:
        _check_int("head.channels", self.channels, minimum=0)


@dataclass(frozen=True)
class ScalingPolicy:
    """Which parts of a network the scaling rules leave alone.

    EfficientNet-Lite keeps its stem (32) and head (1280) and the repeats of its first and
    last stage fixed (official lite builder); the B family scales everything. EfficientNetV2
    rounds channels without V1's 0.9 step (``round_limit=0``): V2-B3's stage 1 keeps 16
    channels where V1's rule would make 24.
    """

    fixed_stem: bool = False
    fixed_head: bool = False
    fixed_depth_stages: tuple[int, ...] = ()
    # round_filters never goes below this fraction of the scaled width (V1's 0.9 step);
    # EfficientNetV2's official code has no such step (0.0).
    round_limit: float = 0.9

    def depth_fixed(self, stage_index: int, num_stages: int) -> bool:
        return any(i % num_stages == stage_index for i in self.fixed_depth_stages)


@dataclass(frozen=True)
class NetworkSpec:
    """A whole network. Channels and repeats are concrete (already scaled)."""

    name: str
    stem: StemSpec
    stages: tuple[StageSpec, ...]
    head: HeadSpec = field(default_factory=HeadSpec)
    activation: str = "silu"
    bn_eps: float = 1e-3
    # PyTorch convention: TF's BN decay 0.99 is PyTorch momentum 0.01.
    bn_momentum: float = 0.01
    padding: str = "same"
    resolution: int = 224
    dropout: float = 0.2
    # Official "1 - survival_prob": the last block drops with (almost) this probability.
    drop_path_rate: float = 0.2
    num_classes: int = 1000
    in_chans: int = 3
    scaling_policy: ScalingPolicy = field(default_factory=ScalingPolicy)

    def __post_init__(self) -> None:
        if not self.stages:
            raise SpecError("a network needs at least one stage")
        if self.activation not in ACTIVATIONS:
            raise SpecError(f"activation {self.activation!r} is unknown; choose one of {ACTIVATIONS}")
        if self.padding not in PADDINGS:
            raise SpecError(f"padding {self.padding!r} is unknown; choose one of {PADDINGS}")
        _check_int("resolution", self.resolution, minimum=1)
        _check_int("num_classes", self.num_classes, minimum=0)
        _check_int("in_chans", self.in_chans, minimum=1)
        if not 0 <= self.dropout < 1:
            raise SpecError(f"dropout must be in [0, 1), got {self.dropout}")
        if not 0 <= self.drop_path_rate < 1:
            raise SpecError(f"drop_path_rate must be in [0, 1), got {self.drop_path_rate}")
        if not self.bn_eps > 0:
            raise SpecError(f"bn_eps must be > 0, got {self.bn_eps}")
        if not 0 < self.bn_momentum <= 1:
            raise SpecError(f"bn_momentum must be in (0, 1] (PyTorch convention), got {self.bn_momentum}")
        previous = self.stem.channels
        for i, stage in enumerate(self.stages):
            if stage.in_channels != previous:
                raise SpecError(
                    f"stage {i} takes {stage.in_channels} channels but the layer before it "
                    f"gives {previous}; set in_channels={previous}"
                )
            previous = stage.out_channels

    @property
    def num_blocks(self) -> int:
        return sum(s.repeats for s in self.stages)

    @property
    def total_stride(self) -> int:
        """How many times the network shrinks its input (32 for B0, 4 for the 28 px nets)."""
        stride = self.stem.reduction
        for stage in self.stages:
            stride *= stage.stride
        return stride

    @property
    def num_features(self) -> int:
        """Width of the pooled features that feed the classifier."""
        return self.head.channels or self.stages[-1].out_channels

    def replace(self, **changes: object) -> NetworkSpec:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise SpecError(f"{name} must be >= {minimum}, got {value}")

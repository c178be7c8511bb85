"""The blocks a stage can repeat: MBConv, depthwise-separable, ResNet bottleneck, plain conv.

Each takes the same keyword arguments (``BlockArgs``) so that the builder treats them alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .layers import ConvBnAct, DropPath, SqueezeExcite, activate, activation


@dataclass(frozen=True)
class BlockArgs:
    """One block, resolved from a StageSpec row and the network settings."""

    in_channels: int
    out_channels: int
    kernel: int
    stride: int
    expand_ratio: float
    se_ratio: float
    skip: bool
    act: str
    bn_eps: float
    bn_momentum: float
    padding: str
    drop_path_rate: float

    @property
    def identity_fits(self) -> bool:
        return self.stride == 1 and self.in_channels == self.out_channels

    def conv(self, in_channels: int, out_channels: int, kernel: int = 1, stride: int = 1, *,
             groups: int = 1, act: str | None = "block") -> ConvBnAct:
        return ConvBnAct(in_channels, out_channels, kernel, stride, groups=groups,
                         act=self.act if act == "block" else act,
                         bn_eps=self.bn_eps, bn_momentum=self.bn_momentum, padding=self.padding)

    def squeeze_excite(self, channels: int) -> nn.Module:
        if self.se_ratio <= 0:
            return nn.Identity()
        # SE width comes from the block input, not the expanded width (official code).
        return SqueezeExcite(channels, max(1, int(self.in_channels * self.se_ratio)), self.act)


class MBConv(nn.Module):
    """Inverted residual bottleneck (Sandler et al.; paper Table 1), with optional SE:
    expand 1x1 -> depthwise kxk -> SE -> project 1x1 (linear) -> stochastic depth + skip."""

    def __init__(self, args: BlockArgs) -> None:
        super().__init__()
        mid = max(1, round(args.in_channels * args.expand_ratio))
        # Official code: no expansion conv when the ratio is 1 (B0's first stage).
        self.expand = args.conv(args.in_channels, mid) if args.expand_ratio != 1 else nn.Identity()
        self.dw = args.conv(mid, mid, args.kernel, args.stride, groups=mid)
        self.se = args.squeeze_excite(mid)
        self.project = args.conv(mid, args.out_channels, act=None)
        self.has_skip = args.skip and args.identity_fits
        self.drop_path = DropPath(args.drop_path_rate) if self.has_skip else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.se(self.dw(self.expand(x))))
        if self.has_skip:
            out = self.drop_path.add_to(x, out)  # drop_path(out) + x, one pass
        return out


class FusedMBConv(nn.Module):
    """Fused-MBConv (EfficientNetV2, official ``FusedMBConvBlock``): the expansion 1x1 and the
    depthwise kxk of MBConv fused into one regular kxk conv (BN, act) -> optional SE -> linear
    1x1 projection (BN, no act). With expand ratio 1 the kxk conv goes straight from the input
    to the output width and is the whole block, activation after its BN included."""

    def __init__(self, args: BlockArgs) -> None:
        super().__init__()
        self.expands = args.expand_ratio != 1
        if not self.expands:
            self.conv: nn.Module = args.conv(args.in_channels, args.out_channels, args.kernel, args.stride)
            self.se = args.squeeze_excite(args.out_channels)
            self.project: nn.Module = nn.Identity()
        else:
            mid = max(1, round(args.in_channels * args.expand_ratio))
            self.expand = args.conv(args.in_channels, mid, args.kernel, args.stride)
            self.se = args.squeeze_excite(mid)
            self.project = args.conv(mid, args.out_channels, act=None)
        self.has_skip = args.skip and args.identity_fits
        self.drop_path = DropPath(args.drop_path_rate) if self.has_skip else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.se(self.expand(x) if self.expands else self.conv(x)))
        if self.has_skip:
            out = self.drop_path.add_to(x, out)  # drop_path(out) + x, one pass
        return out


class DepthwiseSeparable(nn.Module):
    """MobileNetV1's layer: depthwise kxk (BN, act) -> optional SE -> pointwise 1x1 (BN, act)."""

    def __init__(self, args: BlockArgs) -> None:
        super().__init__()
        self.dw = args.conv(args.in_channels, args.in_channels, args.kernel, args.stride, groups=args.in_channels)
        self.se = args.squeeze_excite(args.in_channels)
        self.pw = args.conv(args.in_channels, args.out_channels)
        self.has_skip = args.skip and args.identity_fits
        self.drop_path = DropPath(args.drop_path_rate) if self.has_skip else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.pw(self.se(self.dw(x)))
        if self.has_skip:
            out = self.drop_path.add_to(x, out)  # drop_path(out) + x, one pass
        return out


class Bottleneck(nn.Module):
    """ResNet bottleneck (v1.5, stride on the kxk conv): 1x1 -> kxk -> 1x1, then add the
    shortcut (identity, or a strided 1x1 conv + BN when the shape changes) and activate.
    ``expand_ratio`` is the inner width relative to the output (0.25 in ResNet-50)."""

    def __init__(self, args: BlockArgs) -> None:
        super().__init__()
        mid = max(1, round(args.out_channels * args.expand_ratio))
        self.conv1 = args.conv(args.in_channels, mid)
        self.conv2 = args.conv(mid, mid, args.kernel, args.stride)
        self.se = args.squeeze_excite(mid)
        self.conv3 = args.conv(mid, args.out_channels, act=None)
        self.has_skip = args.skip
        if args.skip and not args.identity_fits:
            self.shortcut: nn.Module = args.conv(args.in_channels, args.out_channels, 1, args.stride, act=None)
        else:
            self.shortcut = nn.Identity()
        self.drop_path = DropPath(args.drop_path_rate) if self.has_skip else nn.Identity()
        self.act = activation(args.act)
        self.act_name = args.act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv3(self.se(self.conv2(self.conv1(x))))
        if self.has_skip:
            out = self.drop_path.add_to(self.shortcut(x), out)  # drop_path(out) + shortcut, one pass
        return activate(out, self.act_name, self.act)


class ConvBlock(nn.Module):
    """A regular kxk conv (BN, act) with optional SE and identity skip (MnasNet's ConvOp)."""

    def __init__(self, args: BlockArgs) -> None:
        super().__init__()
        self.conv = args.conv(args.in_channels, args.out_channels, args.kernel, args.stride)
        self.se = args.squeeze_excite(args.out_channels)
        self.has_skip = args.skip and args.identity_fits
        self.drop_path = DropPath(args.drop_path_rate) if self.has_skip else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.se(self.conv(x))
        if self.has_skip:
            out = self.drop_path.add_to(x, out)  # drop_path(out) + x, one pass
        return out


BLOCKS: dict[str, type[nn.Module]] = {
    "mbconv": MBConv,
    "fused": FusedMBConv,
    "ds": DepthwiseSeparable,
    "bottleneck": Bottleneck,
    "conv": ConvBlock,
}

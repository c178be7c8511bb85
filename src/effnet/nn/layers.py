"""Layers that every block shares: TF "SAME" padding, conv-BN-activation, squeeze-and-
excitation, and stochastic depth."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TF "SAME" padding (before, after) along one axis of length ``size``.

    TF makes the output ``ceil(size / stride)`` long and puts the odd pixel *after*.
    With ``size = q * stride + r`` the total is ``k_eff - (r or stride)``, clipped at 0.
    """
    effective = (kernel - 1) * dilation + 1
    remainder = size % stride
    total = max(effective - (remainder if remainder > 0 else stride), 0)
    return total // 2, total - total // 2


class Conv2dSame(nn.Conv2d):
    """A conv with TF "SAME" padding computed from the actual input size (any size works).

    Only used where SAME differs from symmetric padding: strides > 1. The parameters are
    those of ``nn.Conv2d``, so state dicts do not depend on the padding mode.
    """

    def pads(self, x: torch.Tensor) -> tuple[int, int, int, int]:
        """(left, right, top, bottom) zeros that SAME adds to ``x``."""
        top, bottom = same_padding(x.shape[-2], self.kernel_size[0], self.stride[0], self.dilation[0])
        left, right = same_padding(x.shape[-1], self.kernel_size[1], self.stride[1], self.dilation[1])
        return left, right, top, bottom

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, list(self.pads(x)))
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def conv2d(in_channels: int, out_channels: int, kernel: int, stride: int = 1, *,
           groups: int = 1, bias: bool = False, padding: str = "same") -> nn.Conv2d:
    """A kxk conv; SAME and symmetric padding agree for odd kernels at stride 1."""
    if padding == "same" and stride > 1:
        return Conv2dSame(in_channels, out_channels, kernel, stride, padding=0, groups=groups, bias=bias)
    return nn.Conv2d(in_channels, out_channels, kernel, stride, padding=kernel // 2, groups=groups, bias=bias)


# Each activation's module and its functional form (which can work in place).
_ACTIVATIONS = {"silu": (nn.SiLU, F.silu), "relu": (nn.ReLU, F.relu), "relu6": (nn.ReLU6, F.relu6),
                "hard_swish": (nn.Hardswish, F.hardswish)}


def activation(name: str | None) -> nn.Module:
    if name is None:
        return nn.Identity()
    return _ACTIVATIONS[name][0]()


def overwrite_allowed() -> bool:
    """True in plain eager inference (no autograd, not tracing, exporting or compiling): a
    layer may then write its result into a tensor it made itself, as timm's in-place
    activations do. Each fresh activation-sized buffer costs more than its arithmetic at
    large batches: glibc serves blocks over 32 MiB with new ``mmap`` pages, so the kernel
    page-faults and zeroes every 4 KiB of it again on each forward. Graphs that exporters
    and ``torch.compile`` capture keep the out-of-place ops."""
    return not (torch.is_grad_enabled() or torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()
                or torch.compiler.is_compiling())


def activate(x: torch.Tensor, name: str | None, module: nn.Module) -> torch.Tensor:
    """``module(x)`` (the activation called ``name``), in place on ``x`` where
    :func:`overwrite_allowed`: the caller must own ``x``. Same values either way."""
    if name is not None and type(module) is _ACTIVATIONS[name][0] and overwrite_allowed():
        return _ACTIVATIONS[name][1](x, inplace=True)
    return module(x)


class ConvBnAct(nn.Module):
    """conv -> BN -> activation (``act=None`` for the linear projection of MBConv)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 1, stride: int = 1, *,
                 groups: int = 1, act: str | None, bn_eps: float, bn_momentum: float,
                 padding: str) -> None:
        super().__init__()
        self.conv = conv2d(in_channels, out_channels, kernel, stride, groups=groups, padding=padding)
        self.bn = nn.BatchNorm2d(out_channels, eps=bn_eps, momentum=bn_momentum)
        self.act = activation(act)
        self.act_name = act

    @classmethod
    def from_parts(cls, conv: nn.Conv2d, bn: nn.BatchNorm2d, act: str | None) -> ConvBnAct:
        """A layer around existing conv and BN modules (shared, not copied): how the fused
        training kernels (``effnet.kernels``) swap a layer without touching its parameters."""
        layer = cls.__new__(cls)
        nn.Module.__init__(layer)
        layer.conv, layer.bn, layer.act, layer.act_name = conv, bn, activation(act), act
        return layer

    def pads(self, x: torch.Tensor) -> tuple[int, int, int, int]:
        """(left, right, top, bottom) zeros the conv pads ``x`` with: TF SAME for
        Conv2dSame, else the conv's own symmetric padding."""
        if isinstance(self.conv, Conv2dSame):
            return self.conv.pads(x)
        pad_h, pad_w = self.conv.padding  # type: ignore[misc]
        return pad_w, pad_w, pad_h, pad_h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return activate(self.bn(self.conv(x)), self.act_name, self.act)


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation (Hu et al.): global mean -> reduce -> act -> expand -> sigmoid."""

    def __init__(self, channels: int, reduced: int, act: str) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, reduced, 1, bias=True)
        self.act = activation(act)
        self.expand = nn.Conv2d(reduced, channels, 1, bias=True)

    @classmethod
    def from_parts(cls, reduce: nn.Conv2d, act: nn.Module, expand: nn.Conv2d) -> SqueezeExcite:
        """An SE layer around existing modules (shared, not copied); see ConvBnAct.from_parts."""
        layer = cls.__new__(cls)
        nn.Module.__init__(layer)
        layer.reduce, layer.act, layer.expand = reduce, act, expand
        return layer

    def gate_logits(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.expand(self.act(self.reduce(pooled)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(self.gate_logits(x.mean((2, 3), keepdim=True)))
        # Every block feeds SE a tensor it just made, so inference may scale it in place.
        return x.mul_(gate) if gate.dtype == x.dtype and overwrite_allowed() else x * gate


class DropPath(nn.Module):
    """Stochastic depth (Huang et al. 2016) as in the official code: one Bernoulli draw per
    sample, survivors divided by the keep probability, identity at eval time."""

    def __init__(self, rate: float) -> None:
        super().__init__()
        self.rate = float(rate)

    def _mask(self, x: torch.Tensor) -> torch.Tensor:
        keep = 1.0 - self.rate
        # Scale the per-sample mask, not the activation: one pass over x instead of two.
        return torch.empty((x.shape[0], 1, 1, 1), dtype=x.dtype, device=x.device).bernoulli_(keep).div_(keep)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.rate == 0.0:
            return x
        return x * self._mask(x)

    def add_to(self, shortcut: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``shortcut + self(x)`` as one ``addcmul`` pass (the same random draw as ``self(x)``)."""
        if not self.training or self.rate == 0.0:
            # In place into x, the block's own output, where allowed (same sum either way).
            fits = shortcut.dtype == x.dtype and shortcut.shape == x.shape
            return x.add_(shortcut) if fits and overwrite_allowed() else x + shortcut
        return torch.addcmul(shortcut, x, self._mask(x))

    def extra_repr(self) -> str:
        return f"rate={self.rate:.4f}"

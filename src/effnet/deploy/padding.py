"""TF "SAME" padding made exportable, without touching ``effnet.nn``.

``Conv2dSame`` picks its pads with Python branches on the input size. Eager PyTorch is
exact at every size, but an exporter either bakes the branch taken for the example input
(legacy ONNX tracing) or refuses the data-dependent branch (``torch.export``). Two module
transforms fix that, each returning a new model with the same parameters and state-dict
keys:

* :func:`freeze_same_padding` - constant pads for one input size. The exported graph has a
  plain ``Pad`` with constant pads, which int8 static quantisation keeps intact.
* :func:`traceable_same_padding` - pads written as branch-free integer arithmetic on the
  input size, so a traced or exported graph stays exact at every size (dynamic export).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ..nn.layers import Conv2dSame, same_padding


class _OnnxPaddedConv(torch.autograd.Function):
    """Pad + conv, written to ONNX as one ``Conv`` with asymmetric ``pads``. ONNX convs take
    separate begin and end pads (PyTorch's do not), so the separate ``Pad`` node - a full
    copy of the activation, and a fp32 island in an int8 graph - disappears."""

    @staticmethod
    def forward(ctx, x, weight, bias, pads, stride, dilation, groups):  # type: ignore[no-untyped-def]
        return F.conv2d(F.pad(x, list(pads)), weight, bias, stride, 0, dilation, groups)

    @staticmethod
    def symbolic(g, x, weight, bias, pads, stride, dilation, groups):  # type: ignore[no-untyped-def]
        left, right, top, bottom = pads
        inputs = [x, weight] if bias is None else [x, weight, bias]
        return g.op("Conv", *inputs, kernel_shape_i=list(weight.type().sizes()[2:]),
                    pads_i=[top, left, bottom, right], strides_i=list(stride), dilations_i=list(dilation),
                    group_i=groups)


class FixedPadConv2d(nn.Conv2d):
    """A conv whose SAME pads were fixed for one input size: (left, right, top, bottom)."""

    def __init__(self, *args, pads: tuple[int, int, int, int], **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.pads = tuple(int(p) for p in pads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.onnx.is_in_onnx_export():
            return _OnnxPaddedConv.apply(x, self.weight, self.bias, self.pads, self.stride, self.dilation,
                                         self.groups)
        return F.conv2d(F.pad(x, list(self.pads)), self.weight, self.bias, self.stride, 0, self.dilation,
                        self.groups)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, pads={self.pads}"


def _traceable_pads(size: torch.Tensor | int, kernel: int, stride: int, dilation: int) -> tuple:
    # TF: out = ceil(size / stride), total = (out - 1) * stride + k_eff - size, the odd pixel
    # after. No max(., 0): with k_eff >= stride (checked at build) total is never negative,
    # and leaving out the branch is what keeps the size symbolic.
    effective = (kernel - 1) * dilation + 1
    out = (size + stride - 1) // stride
    total = (out - 1) * stride + effective - size
    before = total // 2
    return before, total - before


class TraceableSameConv2d(nn.Conv2d):
    """SAME padding computed from the input size with integer arithmetic only, so exporters
    record the arithmetic instead of a constant."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, bottom = _traceable_pads(x.shape[-2], self.kernel_size[0], self.stride[0], self.dilation[0])
        left, right = _traceable_pads(x.shape[-1], self.kernel_size[1], self.stride[1], self.dilation[1])
        x = F.pad(x, [left, right, top, bottom])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _rebuild(conv: nn.Conv2d, cls: type[nn.Conv2d], **extra: object) -> nn.Conv2d:
    new = cls(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, padding=0,
              dilation=conv.dilation, groups=conv.groups, bias=conv.bias is not None, **extra)
    new.weight = conv.weight
    if conv.bias is not None:
        new.bias = conv.bias
    return new.train(conv.training)


def _replace(model: nn.Module, swap: dict[str, nn.Module]) -> None:
    for name, module in swap.items():
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, module)


def freeze_same_padding(model: nn.Module, input_size: int | tuple[int, int], in_chans: int | None = None) -> nn.Module:
    """A copy of ``model`` whose SAME convs use the pads for ``input_size`` (H, W) only.

    The sizes each conv sees are found by running one image of that size through the model.
    """
    h, w = (input_size, input_size) if isinstance(input_size, int) else input_size
    model = copy.deepcopy(model)
    same = {name: m for name, m in model.named_modules() if isinstance(m, (Conv2dSame, TraceableSameConv2d))}
    if not same:
        return model
    seen: dict[str, tuple[int, int]] = {}

    def record(name: str):  # type: ignore[no-untyped-def]
        def hook(_module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
            seen.setdefault(name, tuple(inputs[0].shape[-2:]))
        return hook

    hooks = [m.register_forward_pre_hook(record(name)) for name, m in same.items()]
    channels = in_chans or next(iter(m for m in model.modules() if isinstance(m, nn.Conv2d))).in_channels
    param = next(model.parameters())
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, channels, h, w, dtype=param.dtype, device=param.device))
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    swap = {}
    for name, conv in same.items():
        if name not in seen:  # not on the forward path (cannot happen for effnet's models)
            continue
        sh, sw = seen[name]
        top, bottom = same_padding(sh, conv.kernel_size[0], conv.stride[0], conv.dilation[0])
        left, right = same_padding(sw, conv.kernel_size[1], conv.stride[1], conv.dilation[1])
        swap[name] = _rebuild(conv, FixedPadConv2d, pads=(left, right, top, bottom))
    _replace(model, swap)
    return model


def traceable_same_padding(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose SAME convs stay exact at every input size once exported."""
    model = copy.deepcopy(model)
    swap = {}
    for name, conv in model.named_modules():
        if isinstance(conv, Conv2dSame):
            effective = [(k - 1) * d + 1 for k, d in zip(conv.kernel_size, conv.dilation)]
            if any(e < s for e, s in zip(effective, conv.stride)):
                raise ValueError(f"{name}: kernel {conv.kernel_size} smaller than stride {conv.stride}; "
                                 "export it at a fixed size (no --dynamic) instead")
            swap[name] = _rebuild(conv, TraceableSameConv2d)
    _replace(model, swap)
    return model

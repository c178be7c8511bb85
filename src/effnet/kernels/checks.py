"""Every entry into the fused CPU kernels' C code passes through these checks first: the C
code trusts its pointers, so a tensor of the wrong dtype, device, shape or layout must be
refused here with a ValueError that says what it got."""

from __future__ import annotations

import ctypes

import torch
from torch import Tensor

ACTIVATIONS = {None: 0, "silu": 1, "relu": 2, "relu6": 3}


def check(what: str, tensor: Tensor, shape: tuple[int, ...] | int) -> None:
    """A float32 CPU tensor of ``shape`` (or of that many dimensions), or a clear error."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"effnet kernel: {what} must be a tensor, got {type(tensor).__name__}")
    if tensor.device.type != "cpu":
        raise ValueError(f"effnet kernel: {what} is on {tensor.device}; the fused kernels run on the CPU only")
    if tensor.dtype != torch.float32:
        raise ValueError(f"effnet kernel: {what} is {tensor.dtype}; the fused kernels take float32 only "
                         "(use the native layers for other precisions)")
    if isinstance(shape, int):
        if tensor.dim() != shape:
            raise ValueError(f"effnet kernel: {what} must have {shape} dimensions, got shape {tuple(tensor.shape)}")
    elif tuple(tensor.shape) != shape:
        raise ValueError(f"effnet kernel: {what} must have shape {shape}, got {tuple(tensor.shape)}")


def check_activation(x: Tensor, weight: Tensor, bias: Tensor, eps: float, act: int) -> None:
    check("x", x, 4)
    channels = x.shape[1]
    check("BN weight", weight, (channels,))
    check("BN bias", bias, (channels,))
    if act not in ACTIVATIONS.values():
        raise ValueError(f"effnet kernel: activation code {act} is unknown; use one of {sorted(ACTIVATIONS.values())}")
    if not eps > 0:
        raise ValueError(f"effnet kernel: BN eps must be > 0, got {eps}")
    if x.numel() <= channels:
        raise ValueError(f"effnet kernel: batch norm needs more than one value per channel, got shape {tuple(x.shape)}")


def check_depthwise(x: Tensor, weight: Tensor, stride: int, pad_top: int, pad_left: int, out_h: int,
                     out_w: int) -> None:
    check("x", x, 4)
    channels = x.shape[1]
    if weight.dim() != 4 or weight.shape[2] != weight.shape[3]:
        raise ValueError(f"effnet kernel: depthwise weight must be [C, 1, k, k], got {tuple(weight.shape)}")
    kernel = weight.shape[-1]
    check("depthwise weight", weight, (channels, 1, kernel, kernel))
    if stride < 1 or kernel < 1 or min(pad_top, pad_left) < 0 or min(out_h, out_w) < 1:
        raise ValueError(f"effnet kernel: bad depthwise geometry (kernel {kernel}, stride {stride}, pads "
                         f"{pad_top}/{pad_left}, output {out_h}x{out_w})")


def pointer(tensor: Tensor) -> ctypes.c_void_p:
    return ctypes.c_void_p(tensor.data_ptr())

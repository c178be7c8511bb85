"""Inference-only model transforms: BatchNorm folded into the conv before it, channels_last,
optional ``torch.compile``.

At eval time BN is an affine map per channel, y = (x - mean) / sqrt(var + eps) * gamma + beta,
so it can be folded into the preceding conv's weight and bias, removing one full pass over
every activation map. The folded model computes the same function (to float rounding) but
can no longer be trained: BN's running statistics are gone.
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn


def fold_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    """Fold ``bn`` (its running statistics) into ``conv`` in place."""
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("BatchNorm without running statistics (track_running_stats=False) cannot be folded")
    with torch.no_grad():
        scale = bn.running_var.add(bn.eps).rsqrt()
        if bn.weight is not None:
            scale = scale * bn.weight
        shift = -bn.running_mean * scale
        if bn.bias is not None:
            shift = shift + bn.bias
        conv.weight.mul_(scale.reshape(-1, 1, 1, 1).to(conv.weight.dtype))
        if conv.bias is None:
            conv.bias = nn.Parameter(shift.to(conv.weight.dtype))
        else:
            conv.bias.copy_(conv.bias * scale + shift)


def fuse_bn(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in eval mode with every conv -> BN pair folded into one conv.

    Pairs are modules with a ``conv`` and a ``bn`` child (effnet's ``ConvBnAct``) and conv
    -> BN neighbours inside an ``nn.Sequential``; their BN becomes ``nn.Identity``.
    """
    model = copy.deepcopy(model).eval()
    folded = 0
    for module in model.modules():
        conv, bn = getattr(module, "conv", None), getattr(module, "bn", None)
        if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
            fold_bn(conv, bn)
            module.bn = nn.Identity()
            folded += 1
        elif isinstance(module, nn.Sequential):
            names = list(module._modules)
            for first, second in zip(names, names[1:]):
                a, b = module._modules[first], module._modules[second]
                if isinstance(a, nn.Conv2d) and isinstance(b, nn.BatchNorm2d):
                    fold_bn(a, b)
                    module._modules[second] = nn.Identity()
                    folded += 1
    left = [name for name, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if left:
        # Not an error: the model still works, it is just not fully folded.
        warnings.warn(f"{len(left)} BatchNorm layers had no conv before them and stay: {left[:3]}", stacklevel=2)
    return model


def channels_last(model: nn.Module) -> nn.Module:
    """The model with 4-D weights in channels_last (NHWC) memory, in place. Feed it
    ``x.contiguous(memory_format=torch.channels_last)``: oneDNN's convolutions run NHWC
    natively, so no layout reorders happen between layers."""
    return model.to(memory_format=torch.channels_last)


def optimize_for_inference(model: nn.Module, *, fuse: bool = True, nhwc: bool = True,
                           compile: bool = False) -> nn.Module:
    """A new eval-mode model for fast CPU/GPU inference: BN folded, channels_last, and
    optionally compiled (``torch.compile``; the first call per input shape pays the compile
    time, 30-90 s for B0 on 2 cores). Run it under ``torch.inference_mode()``.

    Compiling uses inductor's ``freezing``: weights become constants, so oneDNN convs are
    pre-packed and SiLU is fused into them (1.7x the uncompiled fused model at batch 32 on
    our 2-core CPU; without freezing, 1.1-1.3x). The compiled model no longer sees later
    changes to its parameters, which an inference-only copy never has.
    """
    model = fuse_bn(model) if fuse else copy.deepcopy(model).eval()
    if nhwc:
        model = channels_last(model)
    if compile:
        model = torch.compile(model, options={"freezing": True})  # type: ignore[assignment]
    return model

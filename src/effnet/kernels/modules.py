"""The fused kernels as layers: a module swap, like ``deploy/padding.py``'s.

:func:`use_fused_kernels` replaces every ``ConvBnAct`` and ``SqueezeExcite`` of a model, in
place, by a subclass whose forward runs effnet's CPU kernels in training mode where they
apply (float32 channels_last on the CPU) and the native ops everywhere else (evaluation,
export, CUDA, autocast, NCHW input). The swapped layers share the original conv, BN and SE
modules, so parameters, optimiser state and state-dict keys are untouched.
"""

from __future__ import annotations

import torch
from torch import nn

from ..nn.layers import ConvBnAct, SqueezeExcite
from . import ops
from .compile import available, unavailable_reason


class FusedConvBnAct(ConvBnAct):
    """``ConvBnAct`` with the depthwise conv and BN + activation as fused kernels in training."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and ops.depthwise_applicable(x, self.conv):
            x = ops.depthwise(x, self.conv, self.pads(x))
        else:
            x = self.conv(x)
        if self.training and ops.applicable(x, self.bn, self.act_name):
            return ops.batch_norm_act(x, self.bn, self.act_name)
        return self.act(self.bn(x))


class FusedSqueezeExcite(SqueezeExcite):
    """``SqueezeExcite`` with a two-pass backward in training (eager mode)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and ops.squeeze_excite_applicable(x):
            return ops.squeeze_excite(x, self.gate_logits, list(self.parameters()))
        return super().forward(x)


def _swapped(module: nn.Module, enable: bool) -> nn.Module | None:
    """The replacement for one layer, or None when it stays."""
    if isinstance(module, ConvBnAct):
        cls = FusedConvBnAct if enable else ConvBnAct
        return None if type(module) is cls else cls.from_parts(module.conv, module.bn, module.act_name)
    if isinstance(module, SqueezeExcite):
        cls_se = FusedSqueezeExcite if enable else SqueezeExcite
        return None if type(module) is cls_se else cls_se.from_parts(module.reduce, module.act, module.expand)
    return None


def use_fused_kernels(model: nn.Module, enable: bool = True) -> int:
    """Swap the model's layers for their fused versions (``enable=False`` swaps them back),
    in place; returns how many layers are fused afterwards. Raises RuntimeError with the
    reason when the kernels cannot be built here."""
    if enable and not available():
        raise RuntimeError(f"fused CPU kernels are unavailable: {unavailable_reason()}")
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            replacement = _swapped(child, enable)
            if replacement is not None:
                replacement.train(child.training)
                setattr(parent, name, replacement)
    return fused_layers(model)


def fused_layers(model: nn.Module) -> int:
    """How many layers of ``model`` run the fused kernels."""
    return sum(isinstance(m, (FusedConvBnAct, FusedSqueezeExcite)) for m in model.modules())


__all__ = ["FusedConvBnAct", "FusedSqueezeExcite", "fused_layers", "use_fused_kernels"]

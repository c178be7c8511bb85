"""effnet's CPU training kernels (C with OpenMP, loaded through ctypes) and the module swap
that puts them in a model: ``use_fused_kernels(model)``. ``nn/`` holds the plain layers."""

from .compile import available, unavailable_reason
from .modules import FusedConvBnAct, FusedSqueezeExcite, fused_layers, use_fused_kernels

__all__ = ["FusedConvBnAct", "FusedSqueezeExcite", "available", "fused_layers", "unavailable_reason",
           "use_fused_kernels"]

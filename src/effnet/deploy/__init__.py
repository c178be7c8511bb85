"""Deployment: export (ONNX, TorchScript, ExportedProgram), fast inference (BN folding,
channels_last, torch.compile, onnxruntime), int8 quantisation and benchmarks.

onnxruntime, timm and torchvision are imported only by the functions that need them.
"""

from .export import FORMATS, ExportResult, export_model, max_abs_diff
from .fuse import channels_last, fuse_bn, optimize_for_inference
from .padding import FixedPadConv2d, TraceableSameConv2d, freeze_same_padding, traceable_same_padding
from .quantize import Agreement, agreement, quantize_onnx
from .runtime import OnnxModel, OnnxRunner, cache_dir, onnx_model_for, session_options

__all__ = [
    "FORMATS", "Agreement", "ExportResult", "FixedPadConv2d", "OnnxModel", "OnnxRunner", "TraceableSameConv2d",
    "agreement", "channels_last", "export_model", "freeze_same_padding", "fuse_bn", "max_abs_diff",
    "cache_dir", "onnx_model_for", "optimize_for_inference", "quantize_onnx", "session_options",
    "traceable_same_padding",
]

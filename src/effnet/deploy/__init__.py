"""Deployment: export (ONNX, OpenVINO IR, TorchScript, ExportedProgram, ExecuTorch), fast
inference (BN folding, channels_last, torch.compile, onnxruntime and its export cache,
ExecuTorch's XNNPACK programs) and int8 quantisation.

onnxruntime, OpenVINO and ExecuTorch are imported only by the functions that need them.
Benchmarks live in ``effnet.bench``.
"""

from .executorch import ExecuTorchModel, ExecuTorchRunner
from .export import FORMATS, ExportResult, export_model, max_abs_diff
from .fuse import channels_last, fuse_bn, optimize_for_inference
from .onnx_cache import model_fingerprint, onnx_model_for, prune_cache
from .padding import FixedPadConv2d, TraceableSameConv2d, freeze_same_padding, traceable_same_padding
from .quantize import Agreement, agreement, quantize_onnx
from .runtime import OnnxModel, OnnxRunner, session_options

__all__ = [
    "FORMATS", "Agreement", "ExecuTorchModel", "ExecuTorchRunner",
    "ExportResult", "FixedPadConv2d", "OnnxModel", "OnnxRunner", "TraceableSameConv2d",
    "agreement", "channels_last", "export_model", "freeze_same_padding", "fuse_bn", "max_abs_diff",
    "model_fingerprint", "onnx_model_for", "optimize_for_inference", "prune_cache", "quantize_onnx",
    "session_options", "traceable_same_padding",
]

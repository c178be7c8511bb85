"""Exports that carry a quantisation-aware run's learned int8 ranges.

The int8 model of a QAT run (``effnet.train.qat.int8_model``) is PyTorch's converted PT2E
graph: int8 weights and a quantise/dequantise pair, with the learned scale and zero-point, on
every tensor the XNNPACK quantiser annotated. Exporting that graph keeps those numbers; a
quantiser that calibrates anew (onnxruntime's ``quantize_static``, NNCF) would replace them
with ranges of its own, so it is not used here.

- ONNX QDQ: ``torch.onnx.export(dynamo=True)`` writes each pair as QuantizeLinear /
  DequantizeLinear with the learned scale and zero-point; onnxruntime fuses them with Conv and
  Gemm into int8 kernels, and OpenVINO reads the same file as FakeQuantize. It needs
  ``onnxscript`` (torch.onnx's exporter of exported graphs).
- ExecuTorch ``.pte`` with the XNNPACK delegate is the target the quantiser was written for.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..atomic import write_atomic


def export_int8_onnx(int8: torch.fx.GraphModule, path: str | os.PathLike[str], *, in_chans: int,
                     image_size: int) -> Path:
    """The converted graph as an ONNX QDQ model with a dynamic batch (input ``images``,
    output ``logits``); the learned scales and zero-points are the QuantizeLinear /
    DequantizeLinear constants."""
    try:
        import onnxscript  # noqa: F401  (torch.onnx's exporter for exported graphs)
    except ModuleNotFoundError:
        raise RuntimeError("exporting a converted PT2E graph to ONNX needs onnxscript: pip install onnxscript") from None
    example = torch.zeros(2, in_chans, image_size, image_size)
    program = torch.onnx.export(int8, (example,), dynamo=True, input_names=["images"], output_names=["logits"],
                                dynamic_shapes=({0: torch.export.Dim("batch")},), verbose=False)
    if program is None:
        raise RuntimeError("torch.onnx.export returned no program for the converted graph")
    return write_atomic(path, lambda partial: program.save(str(partial)))


__all__ = ["export_int8_onnx"]

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
- ExecuTorch ``.pte`` with the XNNPACK delegate, the target the quantiser was written for:
  the converted graph exported again and lowered with ``XnnpackPartitioner``; the delegate
  runs the int8 convolutions and linear layers with the learned scales.
"""

from __future__ import annotations

import os
from collections.abc import Callable
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


def export_int8_executorch(int8: torch.fx.GraphModule, path: str | os.PathLike[str], *, in_chans: int,
                           image_size: int, batch: int = 1) -> Path:
    """The converted graph lowered to an ExecuTorch program with the XNNPACK delegate, for
    batches of ``batch`` images."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    program = torch.export.export(int8, (torch.zeros(batch, in_chans, image_size, image_size),))
    lowered = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()]).to_executorch()
    return write_atomic(path, lowered.buffer)


def executorch_runner(path: str | os.PathLike[str]) -> Callable[[torch.Tensor], torch.Tensor]:
    """A ``.pte`` file's forward method as a function of a batch (of the batch it was lowered for)."""
    from executorch.runtime import Runtime

    method = Runtime.get().load_program(Path(path)).load_method("forward")
    return lambda images: method.execute([images.contiguous()])[0]


__all__ = ["executorch_runner", "export_int8_executorch", "export_int8_onnx"]

"""Export a model to ONNX, OpenVINO IR, TorchScript, a ``torch.export`` ExportedProgram or an
ExecuTorch program (XNNPACK, fp32 or int8: :mod:`effnet.deploy.executorch`).

Every export is of the eval-mode model with BN folded (:mod:`effnet.deploy.fuse`). TF SAME
padding is made explicit first (:mod:`effnet.deploy.padding`): constant pads for the one
``resolution`` of a static export (what int8 static quantisation needs), or pads computed
from the input size in the graph for a ``dynamic`` export (any batch, height and width).
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .executorch import ExecuTorchRunner, export_executorch
from .fuse import fuse_bn
from .padding import freeze_same_padding, traceable_same_padding
from .openvino import OpenVinoRunner, export_openvino, require_openvino
from .runtime import OnnxRunner

FORMATS = ("onnx", "openvino", "torchscript", "exported-program", "executorch")
SUFFIXES = {"onnx": ".onnx", "openvino": ".xml (+ .bin)", "torchscript": ".pt", "exported-program": ".pt2",
            "executorch": ".pte"}
INPUT_NAME, OUTPUT_NAME = "input", "logits"
# ONNX opset 17 is read by every onnxruntime from 1.13 on and has all the ops we emit.
OPSET = 17


@dataclass(frozen=True)
class ExportResult:
    path: Path
    format: str
    resolution: int
    dynamic: bool
    max_abs_diff: float | None = None  # against eager PyTorch, when verified


def _in_chans(model: nn.Module) -> int:
    first = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if first is None:
        raise ValueError("the model has no Conv2d layer; effnet export expects an image model")
    return first.in_channels


def total_stride(model: nn.Module) -> int:
    """How many times the network shrinks its input (32 for B0; 4 for the 28 px Fashion-MNIST
    nets), from its spec; 32 when the model has none."""
    spec = getattr(model, "spec", None)
    return spec.total_stride if spec is not None else 32


def prepare(model: nn.Module, resolution: int, *, dynamic: bool, fold: bool = True) -> nn.Module:
    """The module that is exported: eval mode, BN folded, SAME padding made explicit."""
    model = fuse_bn(model) if fold else model
    model = traceable_same_padding(model) if dynamic else freeze_same_padding(model, resolution)
    if hasattr(model, "set_grad_checkpointing"):
        model.set_grad_checkpointing(False)
    return model.eval()


def example_input(model: nn.Module, resolution: int, batch: int = 1) -> torch.Tensor:
    return torch.randn(batch, _in_chans(model), resolution, resolution)


def export_onnx(model: nn.Module, path: str | Path, example: torch.Tensor, *, dynamic: bool) -> None:
    axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}
    if dynamic:
        axes[INPUT_NAME].update({2: "height", 3: "width"})
    with warnings.catch_warnings():
        # The TorchScript-based exporter is deprecated in favour of the dynamo one, which
        # needs onnxscript; this one needs nothing extra and handles our graph exactly.
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), str(path), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes=axes, opset_version=OPSET, dynamo=False, do_constant_folding=True)


def export_torchscript(model: nn.Module, path: str | Path, example: torch.Tensor) -> None:
    # Tracing records the size arithmetic of TraceableSameConv2d, so a traced graph of the
    # dynamic model stays exact at other sizes; the static one has constant pads.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(model, (example,), check_trace=False)
    traced.save(str(path))


def export_program(model: nn.Module, path: str | Path, example: torch.Tensor, *, dynamic: bool) -> None:
    batch = torch.export.Dim("batch", min=1, max=4096)
    shapes: dict[int, object] = {0: batch}
    if dynamic:
        # torch.export treats a 1x1 final map (inputs <= 32 px) as a special case, so the
        # dynamic range starts above it; 8192 is far past any use.
        shapes.update({2: torch.export.Dim("height", min=33, max=8192), 3: torch.export.Dim("width", min=33, max=8192)})
    # A batch of 2 for tracing: torch.export specialises on size-1 dimensions.
    example = example.expand(2, *example.shape[1:]).contiguous()
    program = torch.export.export(model, (example,), dynamic_shapes=({**shapes},))
    torch.export.save(program, str(path))


def export_model(model: nn.Module, path: str | Path, *, format: str = "onnx", resolution: int = 224,
                 dynamic: bool = False, fold: bool = True, calibration: np.ndarray | None = None,
                 keep_fp32: Sequence[str] = ()) -> ExportResult:
    """Export ``model`` (any effnet classifier or feature net) and return where it went.

    ``resolution`` is the image size of a static export and the tracing size of a dynamic
    one. The batch dimension is always dynamic (an ExecuTorch program runs a larger batch than
    its plan holds as several calls). ``calibration`` images make an ExecuTorch program int8,
    but for the layer groups ``keep_fp32`` (see :mod:`effnet.deploy.quant_options`).
    """
    if format not in FORMATS:
        raise ValueError(f"unknown export format {format!r}; choose one of {', '.join(FORMATS)}")
    if format == "executorch" and dynamic:
        raise ValueError("an ExecuTorch program has one image size; leave out --dynamic")
    if calibration is not None and format != "executorch":
        raise ValueError("calibration images apply to the ExecuTorch format only (ONNX and OpenVINO int8 "
                         "quantise an exported file: effnet.deploy.quantize, effnet.deploy.openvino)")
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1:
        raise ValueError(f"resolution must be a positive number of pixels, got {resolution!r}")
    reduction = total_stride(model)
    if resolution < reduction:
        raise ValueError(f"resolution {resolution} is too small: this network reduces the image {reduction}x; "
                         f"use >= {reduction}")
    path = Path(path)
    if not path.parent.exists():
        raise FileNotFoundError(f"output folder {path.parent} does not exist; create it first")
    module = prepare(model, resolution, dynamic=dynamic, fold=fold)
    example = example_input(module, resolution)
    if format == "onnx":
        export_onnx(module, path, example, dynamic=dynamic)
    elif format == "openvino":  # through ONNX: OpenVINO's converter reads it as it is
        require_openvino()
        with tempfile.TemporaryDirectory(prefix="effnet-openvino-") as tmp:
            onnx_path = Path(tmp) / "model.onnx"
            export_onnx(module, onnx_path, example, dynamic=dynamic)
            export_openvino(onnx_path, path)
    elif format == "torchscript":
        export_torchscript(module, path, example)
    elif format == "executorch":
        export_executorch(module, path, example, calibration=calibration, keep_fp32=keep_fp32)
    else:
        export_program(module, path, example, dynamic=dynamic)
    return ExportResult(path, format, resolution, dynamic)


def load_exported(path: str | Path, format: str):  # type: ignore[no-untyped-def]
    """A callable (tensor -> tensor) for an exported file, for checking it."""
    if format in ("onnx", "openvino"):
        runner = OnnxRunner(path) if format == "onnx" else OpenVinoRunner(path)
        return lambda x: torch.from_numpy(runner(x.numpy()))
    if format == "executorch":
        program = ExecuTorchRunner(path)
        return lambda x: torch.from_numpy(program(x))
    if format == "torchscript":
        return torch.jit.load(str(path))
    if format == "exported-program":
        return torch.export.load(str(path)).module()
    raise ValueError(f"unknown export format {format!r}; choose one of {', '.join(FORMATS)}")


def max_abs_diff(model: nn.Module, path: str | Path, format: str, sizes: list[int | tuple[int, int]],
                 batch: int = 2) -> float:
    """The largest |exported - eager| over random inputs of each size (``S`` or ``(H, W)``;
    give odd and even sides to check a dynamic export's SAME padding)."""
    exported = load_exported(path, format)
    model = model.eval()
    worst = 0.0
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for size in sizes:
            x = torch.randn(batch, _in_chans(model), *size_pair(size), generator=generator)
            worst = max(worst, (exported(x) - model(x)).abs().max().item())
    return worst


def size_pair(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else size

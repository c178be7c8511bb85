"""A module as a deployed runtime runs it, timed at batch 1: the cost a latency table records.

Each piece is exported the way `effnet export` writes a network (BN folded, SAME pads fixed
for its input size) to ExecuTorch (XNNPACK), ONNX (onnxruntime) or OpenVINO, in fp32 or in
that runtime's int8 (calibrated on random inputs: ranges decide accuracy, not speed), then
loaded with the thread count asked and timed at batch 1 in rounds of back-to-back calls
(what a piece's time is made of them: ``latency_build.fastest``).
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..deploy.executorch import ExecuTorchRunner, export_executorch
from ..deploy.export import export_onnx
from ..deploy.fuse import fuse_bn
from ..deploy.openvino import OpenVinoRunner, export_openvino, quantize_openvino
from ..deploy.padding import freeze_same_padding
from ..deploy.quantize import quantize_onnx
from ..deploy.runtime import OnnxRunner
from ..deploy.timing import time_alternately

RUNTIMES = ("executorch", "onnx", "openvino")
PRECISIONS = ("fp32", "int8")
_DISTRIBUTIONS = {"executorch": "executorch", "onnx": "onnxruntime", "openvino": "openvino"}
_SUFFIX = {"executorch": ".pte", "onnx": ".onnx", "openvino": ".xml"}
CALIBRATION_IMAGES = 8
_EXECUTORCH_THREADS: dict[str, int] = {}


@dataclass(frozen=True)
class Target:
    """Where latency is measured: runtime, precision and threads (batch 1 always)."""

    runtime: str = "executorch"
    precision: str = "fp32"
    threads: int = 1

    def __post_init__(self) -> None:
        if self.runtime not in RUNTIMES:
            raise ValueError(f"unknown runtime {self.runtime!r}; choose one of {', '.join(RUNTIMES)}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; choose one of {', '.join(PRECISIONS)}")
        if self.threads < 1:
            raise ValueError(f"threads must be at least 1, got {self.threads}")

    def version(self) -> str:
        """The runtime package's version (what the table was measured with)."""
        distribution = _DISTRIBUTIONS[self.runtime]
        try:
            return f"{distribution} {importlib.metadata.version(distribution)}"
        except importlib.metadata.PackageNotFoundError:
            raise ImportError(f"{distribution} is not installed; run `pip install effnet[{self.runtime}]` to measure "
                              f"latency in {self.runtime}") from None

    def file(self, stem: Path) -> Path:
        """The file an export for this target at ``stem`` ends in (``stem.int8.pte``, ...)."""
        return stem.with_suffix(f".{self.precision}{_SUFFIX[self.runtime]}")


def deployable(module: nn.Module, shape: tuple[int, int, int]) -> nn.Module:
    """``module`` as the exported network holds it: eval mode, BN folded, SAME pads fixed."""
    return freeze_same_padding(fuse_bn(module), shape[1:], in_chans=shape[0]).eval()


def export_piece(module: nn.Module, shape: tuple[int, int, int], target: Target, stem: Path) -> Path:
    """Write ``module`` (input ``shape`` = C, H, W) for ``target`` at ``target.file(stem)``
    (intermediate files beside it); returns that file."""
    module = deployable(module, shape)
    example = torch.randn(1, *shape)
    calibration = np.random.default_rng(0).standard_normal((CALIBRATION_IMAGES, *shape)).astype(np.float32)
    final = target.file(stem)
    final.parent.mkdir(parents=True, exist_ok=True)
    if target.runtime == "executorch":
        return export_executorch(module, final, example, calibration=calibration if target.precision == "int8" else None)
    onnx_path = Target("onnx", "fp32").file(stem)
    export_onnx(module, onnx_path, example, dynamic=False)
    if target.runtime == "onnx":
        return onnx_path if target.precision == "fp32" else quantize_onnx(onnx_path, final, calibration).path
    xml = export_openvino(onnx_path, Target("openvino", "fp32").file(stem))
    return xml if target.precision == "fp32" else quantize_openvino(xml, final, calibration)


def load_piece(path: Path, target: Target):  # type: ignore[no-untyped-def]
    """A callable ``run(images)`` for an exported piece, on ``target.threads`` threads."""
    if target.runtime == "executorch":
        # XNNPACK's pool is the process's: set it once (each reset also prints a line).
        threads = None if _EXECUTORCH_THREADS.get("set") == target.threads else target.threads
        _EXECUTORCH_THREADS["set"] = target.threads
        return ExecuTorchRunner(path, threads=threads)
    if target.runtime == "onnx":
        return OnnxRunner(path, threads=target.threads, streams=1)
    return OpenVinoRunner(path, threads=target.threads)


def measure_group(runs: dict[str, tuple[Callable[[np.ndarray], object], tuple[int, int, int]]], *, rounds: int = 5,
                  min_time: float = 0.05, warmup: int = 3) -> dict[str, list[float]]:
    """Milliseconds per batch-1 call of each ``name: (run, input shape)``, one per round: every
    round times each in turn (alternating order, :func:`~effnet.deploy.timing.time_alternately`)
    for ``min_time`` seconds and keeps the median call. Timed side by side like this, a slower
    spell of the machine falls on all of them instead of on a few."""
    inputs = {name: np.random.default_rng(1).standard_normal((1, *shape)).astype(np.float32)
              for name, (_, shape) in runs.items()}
    work = {name: (lambda run=run, x=inputs[name]: run(x)) for name, (run, _) in runs.items()}
    samples = time_alternately(work, rounds=rounds, min_time=min_time, warmup=warmup)
    return {name: [t * 1000 for t in s] for name, s in samples.items()}

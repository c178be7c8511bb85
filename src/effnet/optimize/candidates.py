"""The deployable forms of one model that ``effnet optimize`` weighs against each other: every
installed runtime at every precision this CPU runs natively, each written to files and loaded
as ``run(images) -> logits`` (numpy NCHW float32 in, numpy logits out).

- ``torch fp32``: eager PyTorch, BN folded, channels_last (the weights file you already have).
- ``onnx fp32`` / ``onnx int8``: onnxruntime; int8 is QDQ with per-channel weights, calibrated
  by onnxruntime's quantiser (:mod:`effnet.deploy.quantize`).
- ``openvino fp32`` / ``openvino bf16`` / ``openvino int8``: OpenVINO IR; bf16 only where the
  CPU computes it natively (AVX512_BF16 or AMX), since elsewhere OpenVINO falls back to fp32;
  int8 by NNCF post-training quantisation.
- ``executorch fp32`` / ``executorch int8``: an XNNPACK ``.pte`` (the phone-class runtime);
  int8 by PT2E with XNNPACK's quantiser (:mod:`effnet.deploy.executorch`).

- ``onnx int8-qat``: for a quantisation-aware training run, its own int8 graph with the ranges
  it learned, exported as ONNX QDQ (:mod:`effnet.deploy.qat`); nothing is calibrated again.

Every calibrated int8 form is calibrated on the same images, never on the images it is judged on.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..deploy.executorch import ExecuTorchRunner
from ..deploy.export import export_model
from ..deploy.fuse import optimize_for_inference
from ..deploy.openvino import OpenVinoRunner, quantize_openvino
from ..deploy.qat import export_int8_onnx
from ..deploy.quantize import quantize_onnx
from ..deploy.runtime import OnnxRunner
from ..device import cpu_info
from ..train.qat import int8_model

Run = Callable[[np.ndarray], np.ndarray]
PRECISIONS = ("fp32", "bf16", "int8", "int8-qat")
# What each runtime needs installed (None: PyTorch itself).
_PACKAGE = {"torch": None, "onnx": "onnxruntime", "openvino": "openvino", "executorch": "executorch"}
_NATIVE_BF16 = ("avx512_bf16", "amx_bf16")


@dataclass(frozen=True)
class Candidate:
    runtime: str      # torch | onnx | openvino | executorch
    precision: str    # fp32 | bf16 | int8

    @property
    def name(self) -> str:
        return f"{self.runtime} {self.precision}"


@dataclass
class Built:
    """A candidate written to ``files`` (none for eager PyTorch) and loaded as ``run``."""

    candidate: Candidate
    run: Run
    files: list[Path] = field(default_factory=list)


def _installed(runtime: str) -> bool:
    package = _PACKAGE[runtime]
    return package is None or importlib.util.find_spec(package) is not None


def native_bf16() -> bool:
    return any(flag in cpu_info().flags for flag in _NATIVE_BF16)


def available_candidates(*, int8: bool = True, qat: bool = False) -> list[Candidate]:
    """Every runtime x precision that is installed and runs natively on this CPU (with ``qat``,
    the run's own learned int8 too)."""
    found = [Candidate("torch", "fp32")]
    if _installed("onnx"):
        found += [Candidate("onnx", "fp32")] + ([Candidate("onnx", "int8")] if int8 else [])
        if int8 and qat and importlib.util.find_spec("onnxscript") is not None:
            found.append(Candidate("onnx", "int8-qat"))
    if _installed("openvino"):
        found.append(Candidate("openvino", "fp32"))
        if native_bf16():
            found.append(Candidate("openvino", "bf16"))
        if int8 and importlib.util.find_spec("nncf") is not None:
            found.append(Candidate("openvino", "int8"))
    if _installed("executorch"):
        found += [Candidate("executorch", "fp32")] + ([Candidate("executorch", "int8")] if int8 else [])
    return found


def parse_candidates(text: str) -> list[Candidate]:
    """``"onnx int8,openvino fp32"`` (or ``onnx-int8``) -> candidates, each checked."""
    known = {c.name: c for c in available_candidates(qat=True)}
    chosen = []
    for word in (w.strip().replace("-", " ", 1) for w in text.split(",") if w.strip()):
        if word not in known:
            raise ValueError(f"unknown or unavailable candidate {word!r} here; choose from {', '.join(known)}")
        chosen.append(known[word])
    return chosen


def _torch_run(model: nn.Module) -> Run:
    fast = optimize_for_inference(model)

    def run(images: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
            return fast(x.contiguous(memory_format=torch.channels_last)).float().numpy()

    return run


class Builder:
    """Writes each candidate of one model into ``folder``; the fp32 ONNX export, which the
    ONNX and OpenVINO forms start from, is made once."""

    def __init__(self, model: nn.Module, folder: Path, resolution: int, calibration: np.ndarray,
                 threads: int | None = None, qat_run: Path | None = None) -> None:
        self.model, self.folder, self.resolution = model.eval(), Path(folder), resolution
        self.calibration, self.threads, self.qat_run = calibration, threads, qat_run
        self._onnx: Path | None = None

    def onnx_fp32(self) -> Path:
        if self._onnx is None:
            self._onnx = export_model(self.model, self.folder / "model.onnx", format="onnx",
                                      resolution=self.resolution).path
        return self._onnx

    def build(self, candidate: Candidate) -> Built:
        runtime, precision = candidate.runtime, candidate.precision
        if runtime == "torch":
            return Built(candidate, _torch_run(self.model))
        if runtime == "onnx" and precision == "int8-qat":
            if self.qat_run is None:
                raise ValueError("onnx int8-qat needs a quantisation-aware training run (quant.qat=true)")
            path = export_int8_onnx(int8_model(self.qat_run), self.folder / "model.int8-qat.onnx",
                                    in_chans=self.model.spec.in_chans, image_size=self.resolution)
            return Built(candidate, OnnxRunner(path, threads=self.threads), [path])
        if runtime == "onnx":
            path = self.onnx_fp32()
            if precision == "int8":
                path = self.folder / "model.int8.onnx"
                quantize_onnx(self.onnx_fp32(), path, self.calibration)
            return Built(candidate, OnnxRunner(path, threads=self.threads), [path])
        if runtime == "openvino":
            if precision == "int8":
                path = quantize_openvino(self.onnx_fp32(), self.folder / "model.int8.xml", self.calibration)
                files = [path, path.with_suffix(".bin")]
            else:
                path, files = self.onnx_fp32(), [self.onnx_fp32()]
            runner = OpenVinoRunner(path, threads=self.threads, precision="bf16" if precision == "bf16" else "f32")
            return Built(candidate, runner, files)
        if runtime == "executorch":
            path = self.folder / ("model.int8.pte" if precision == "int8" else "model.pte")
            export_model(self.model, path, format="executorch", resolution=self.resolution,
                         calibration=self.calibration if precision == "int8" else None)
            return Built(candidate, ExecuTorchRunner(path, threads=self.threads), [path])
        raise ValueError(f"unknown runtime {runtime!r}")


__all__ = ["PRECISIONS", "Builder", "Built", "Candidate", "Run", "available_candidates", "native_bf16",
           "parse_candidates"]

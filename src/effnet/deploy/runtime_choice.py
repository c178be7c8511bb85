"""Which runtime runs a model for inference, and the model as that runtime runs it: one
place for ``effnet predict``, ``effnet serve`` and their ``--runtime`` option."""

from __future__ import annotations

import importlib.util

import torch
from torch import nn

from .fuse import optimize_for_inference
from .onnx_cache import onnx_model_for

RUNTIMES = ("auto", "torch", "onnx")


def choose_runtime(requested: str, device: torch.device) -> str:
    """The runtime that ``--runtime`` means here. ``onnx`` is a CPU path; ``auto`` falls
    back to PyTorch where onnxruntime is missing or the model runs on CUDA."""
    if requested not in RUNTIMES:
        raise ValueError(f"unknown runtime {requested!r}; choose one of {', '.join(RUNTIMES)}")
    if requested == "torch":
        return "torch"
    if device.type != "cpu":
        if requested == "onnx":
            raise ValueError("--runtime onnx runs on the CPU; use --device cpu, or --runtime torch on CUDA")
        return "torch"
    if importlib.util.find_spec("onnxruntime") is None:
        if requested == "onnx":
            raise ValueError("--runtime onnx needs onnxruntime: pip install 'effnet[onnx]'")
        return "torch"
    return "onnx"


def runtime_model(model: nn.Module, runtime: str, *, cache: bool = True, threads: int | None = None,
                  spin: bool = True) -> nn.Module:
    """The model as the chosen runtime runs it; both give the same classes (ONNX within
    ~1e-5 of PyTorch in logits), with the model's own preprocessing. ``cache=False`` (random
    weights, never saved) exports to a temporary file instead of the ONNX cache. ``spin=False``
    (servers): onnxruntime's idle threads sleep instead of busy-waiting."""
    if runtime == "onnx":
        try:
            return onnx_model_for(model, cache=cache, threads=threads, spin=spin)
        except (RuntimeError, ValueError) as error:
            message = " ".join(str(error).split())
            name = model.spec.name if getattr(model, "spec", None) is not None else type(model).__name__
            raise ValueError(f"cannot export {name} to ONNX ({message}); use --runtime torch") from None
    return optimize_for_inference(model)

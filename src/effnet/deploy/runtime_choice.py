"""Which runtime runs a model for inference, and the model as that runtime runs it: one
place for ``effnet predict``, ``effnet serve`` and their ``--runtime`` option.

``auto`` measures: on the CPU, each installed fp32 runtime (PyTorch with BN folded and
channels_last, onnxruntime, OpenVINO, ExecuTorch with XNNPACK) runs the model at the caller's batch size, and the
fastest is kept. Which one wins depends on the CPU (on an AVX2-only EPYC onnxruntime, on
AVX-512 parts often OpenVINO; docs/deploy.md), so it is measured, not assumed. The choice is
remembered per model, batch, threads and CPU in ``$EFFNET_CACHE/runtime_choice.json``, so
the measuring happens once. bf16 (``openvino-bf16``) and int8 (``executorch-int8``) change
the numbers and are never chosen by ``auto``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .._cache import cache_dir
from ..allocator import keep_freed_cpu_memory
from ..atomic import write_atomic
from ..data.transforms import input_size
from ..device import measured_on
from .calibration import sample_photos
from .executorch import ExecuTorchModel, require_executorch
from .export import export_model
from .fuse import optimize_for_inference
from .onnx_cache import model_fingerprint, onnx_model_for, openvino_model_for
from .timing import seconds_per_call

RUNTIMES = ("auto", "torch", "onnx", "openvino", "openvino-bf16", "executorch", "executorch-int8")
# What each runtime needs installed (None: nothing beyond PyTorch).
_PACKAGE = {"torch": None, "onnx": "onnxruntime", "openvino": "openvino", "openvino-bf16": "openvino",
            "executorch": "executorch", "executorch-int8": "executorch"}
_EXTRA = {"onnxruntime": "onnx", "openvino": "openvino", "executorch": "executorch"}
AUTO_CANDIDATES = ("onnx", "openvino", "executorch", "torch")  # fp32 only: auto never changes the numbers
# int8 calibration for executorch-int8: the first half of `effnet export --int8`'s default
# images (the same scikit-image crops every int8 path of effnet calibrates on).
CALIBRATION_IMAGES = 32


def installed(runtime: str) -> bool:
    package = _PACKAGE[runtime]
    return package is None or importlib.util.find_spec(package) is not None


def choose_runtime(requested: str, device: torch.device) -> str:
    """The runtime that ``--runtime`` means here: ``torch`` on CUDA, ``auto`` where more
    than one CPU runtime is installed (:func:`runtime_model` measures), else the one asked
    for, or a clear error when it cannot run here."""
    if requested not in RUNTIMES:
        raise ValueError(f"unknown runtime {requested!r}; choose one of {', '.join(RUNTIMES)}")
    if requested == "torch":
        return "torch"
    if device.type != "cpu":
        if requested != "auto":
            raise ValueError(f"--runtime {requested} runs on the CPU; use --device cpu, or --runtime torch on CUDA")
        return "torch"
    if requested == "auto":
        return "auto" if any(installed(r) for r in AUTO_CANDIDATES if r != "torch") else "torch"
    if not installed(requested):
        package = _PACKAGE[requested]
        raise ValueError(f"--runtime {requested} needs {package}: pip install 'effnet[{_EXTRA[package]}]'")
    return requested


def _build(model: nn.Module, runtime: str, *, cache: bool, threads: int | None, spin: bool) -> nn.Module:
    if runtime == "torch":
        # PyTorch's CPU activations come from malloc; glibc's default unmaps every large block
        # on free, so each batch page-faults its maps in again, a large share of B0's time at
        # batch 32 when it was measured (not kept in a result file). The process keeps its
        # peak memory instead.
        keep_freed_cpu_memory()
        return optimize_for_inference(model)
    try:
        if runtime == "onnx":
            return onnx_model_for(model, cache=cache, threads=threads, spin=spin)
        if runtime.startswith("executorch"):
            return executorch_model_for(model, int8=runtime == "executorch-int8", cache=cache, threads=threads)
        return openvino_model_for(model, cache=cache, threads=threads,
                                  precision="bf16" if runtime == "openvino-bf16" else "f32")
    except (RuntimeError, ValueError) as error:
        message = " ".join(str(error).split())
        name = model.spec.name if getattr(model, "spec", None) is not None else type(model).__name__
        target = "ExecuTorch" if runtime.startswith("executorch") else "ONNX"
        raise ValueError(f"cannot export {name} to {target} for {runtime} ({message}); use --runtime torch") from None


def executorch_model_for(model: nn.Module, *, int8: bool = False, cache: bool = True,
                         threads: int | None = None) -> ExecuTorchModel:
    """``model`` as an XNNPACK ``.pte`` (BN folded, SAME pads fixed at its input size; int8
    calibrated on :data:`CALIBRATION_IMAGES` sample photos) in ExecuTorch. Lowering takes
    seconds to a minute, so with ``cache`` the program is kept in ``$EFFNET_CACHE/executorch``
    under a content hash of the weights; else it goes to a temporary file."""
    require_executorch()  # fail before exporting when ExecuTorch is missing
    resolution = input_size(model)
    calibration = sample_photos(model, CALIBRATION_IMAGES, resolution=resolution) if int8 else None
    if not cache:
        with tempfile.TemporaryDirectory(prefix="effnet-executorch-") as tmp:
            path = Path(tmp) / "model.pte"
            export_model(model, path, format="executorch", resolution=resolution, calibration=calibration)
            return ExecuTorchModel(path, model, threads=threads)  # the program is read into memory
    name = getattr(getattr(model, "spec", None), "name", type(model).__name__)
    path = (cache_dir() / "executorch" /
            f"{name}-{resolution}px-{model_fingerprint(model, resolution)}{'-int8' if int8 else ''}.pte")
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        export_model(model, path, format="executorch", resolution=resolution, calibration=calibration)
    return ExecuTorchModel(path, model, threads=threads)


@dataclass
class Choice:
    """What ``auto`` measured: seconds per batch of each runtime, and the fastest."""

    runtime: str
    batch: int
    seconds: dict[str, float] = field(default_factory=dict)
    cached: bool = False

    def describe(self) -> str:
        if not self.seconds:
            return f"runtime {self.runtime}"
        timings = ", ".join(f"{name} {s * 1e3:.1f} ms" for name, s in sorted(self.seconds.items(), key=lambda kv: kv[1]))
        how = "measured earlier on this machine" if self.cached else "measured now"
        return f"runtime auto chose {self.runtime} (batch {self.batch}: {timings}; {how})"


def read_choices(path: Path) -> dict[str, dict]:
    """A cache of measured choices (key -> record); empty when missing or damaged."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # missing or damaged: measure again


def _save_choice(path: Path, key: str, record: dict) -> None:
    choices = {**read_choices(path), key: record}
    write_atomic(path, json.dumps(choices, indent=1))  # two processes never leave half a file


def measure_runtimes(model: nn.Module, *, batch: int = 1, cache: bool = True, threads: int | None = None,
                     spin: bool = True, candidates: tuple[str, ...] = AUTO_CANDIDATES) -> tuple[nn.Module, Choice]:
    """Build ``model`` in each installed candidate runtime, time one batch of ``batch``
    images in each, and return the fastest model with what was measured. With ``cache``
    (weights that were saved), a choice made before for this model, batch, threads and CPU is
    reused without measuring."""
    resolution = input_size(model)
    record_path = cache_dir() / "runtime_choice.json"
    key = f"{model_fingerprint(model, resolution)}|batch={batch}|{measured_on(threads)}" if cache else ""
    known = read_choices(record_path).get(key) if cache else None
    if known is not None:
        if known["runtime"] in candidates and installed(known["runtime"]):
            built = _build(model, known["runtime"], cache=cache, threads=threads, spin=spin)
            return built, Choice(known["runtime"], batch, known["seconds"], cached=True)
    channels = getattr(getattr(model, "spec", None), "in_chans", 3)
    x = torch.randn(batch, channels, resolution, resolution, generator=torch.Generator().manual_seed(0))
    if "torch" in candidates:
        torch.set_num_threads(threads or os.cpu_count() or 1)
    built, seconds = {}, {}
    for runtime in (c for c in candidates if installed(c)):
        built[runtime] = _build(model, runtime, cache=cache, threads=threads, spin=spin)

        def run(m: nn.Module = built[runtime]) -> object:
            with torch.inference_mode():
                return m(x)

        seconds[runtime] = seconds_per_call(run)
    best = min(seconds, key=seconds.__getitem__)
    if cache:
        _save_choice(record_path, key, {"runtime": best, "seconds": seconds})
    return built[best], Choice(best, batch, seconds)


def runtime_model(model: nn.Module, runtime: str, *, cache: bool = True, threads: int | None = None,
                  spin: bool = True, batch: int = 1, log: Callable[[str], None] | None = None) -> nn.Module:
    """The model as the chosen runtime runs it; all give the same classes (ONNX and OpenVINO
    fp32 within ~1e-5 of PyTorch in logits), with the model's own preprocessing.
    ``auto``: the fastest measured at ``batch`` (:func:`measure_runtimes`; ExecuTorch only
    with ``cache``), said through ``log``. ``cache=False`` (random weights, never saved) exports to a temporary file
    instead of the ONNX cache. ``spin=False`` (servers): onnxruntime's idle threads sleep
    instead of busy-waiting."""
    if runtime == "auto":
        # Lowering to ExecuTorch takes seconds to a minute: measured only when its program can be
        # kept (weights that were saved), never paid again for every run of random weights.
        candidates = AUTO_CANDIDATES if cache else tuple(c for c in AUTO_CANDIDATES if c != "executorch")
        built, choice = measure_runtimes(model, batch=batch, cache=cache, threads=threads, spin=spin,
                                         candidates=candidates)
        if log is not None:
            log(choice.describe())
        built.runtime_choice = choice  # type: ignore[assignment]
        return built
    return _build(model, runtime, cache=cache, threads=threads, spin=spin)


__all__ = ["AUTO_CANDIDATES", "RUNTIMES", "Choice", "choose_runtime", "executorch_model_for", "installed",
           "measure_runtimes", "runtime_model"]

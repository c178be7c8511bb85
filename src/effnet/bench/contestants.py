"""What ``effnet bench`` runs: our inference and training paths and the peers' (timm,
torchvision) for the same architecture, each made by name so that a fresh subprocess can
rebuild it to measure memory. The peers' models come from :mod:`effnet.bench.peer_models`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..deploy.calibration import sample_photos
from ..deploy.executorch import ExecuTorchRunner, export_executorch
from ..deploy.export import export_model
from ..deploy.fuse import optimize_for_inference
from ..deploy.openvino import OpenVinoRunner, quantize_openvino
from ..deploy.padding import freeze_same_padding
from ..deploy.quantize import quantize_onnx
from ..deploy.runtime import OnnxRunner
from ..deploy.timing import Work
from ..factory import create_model
from ..kernels import use_fused_kernels
from .peer_models import peer_model
from .train_step import training_step

# Our model name -> the same architecture in each peer library.
PEERS: dict[str, tuple[str, ...]] = {
    **{f"efficientnet_b{i}": (f"timm:tf_efficientnet_b{i}", f"timm:efficientnet_b{i}", f"torchvision:efficientnet_b{i}")
       for i in range(8)},
    **{f"efficientnet_lite{i}": (f"timm:tf_efficientnet_lite{i}",) for i in range(5)},
    **{f"efficientnetv2_{v}": (f"timm:tf_efficientnetv2_{v}",) for v in ("b0", "b1", "b2", "b3")},
    **{f"efficientnetv2_{v}": (f"timm:tf_efficientnetv2_{v}", f"timm:efficientnetv2_{v}")
       + ((f"torchvision:efficientnet_v2_{v}",) if v != "xl" else ()) for v in ("s", "m", "l", "xl")},
}

# Paths through an inference runtime: exported to ONNX (ours with BN folded and constant SAME
# pads; a peer through torch.onnx.export as its users do), then onnxruntime or OpenVINO, fp32,
# bf16 (OpenVINO, where the CPU has native bf16) or int8 (onnxruntime's static QDQ quantiser,
# or NNCF for OpenVINO), with the same calibration images for every model.
RUNTIME_PATHS = ("onnx-fp32", "onnx-int8", "openvino-fp32", "openvino-bf16", "openvino-int8")
# onnx-fp32-1session: our graph in one plain session, without the runner's micro-batch plan
# (what the plan itself is worth, against the same graph).
# ExecuTorch: torch.export -> XNNPACK .pte (ours prepared as every export; a peer's eval model as
# it is), fp32 or int8 by PT2E with XNNPACK's quantiser, on the same calibration images.
EXECUTORCH_PATHS = ("executorch-fp32", "executorch-int8")
INFERENCE_PATHS = ("eager", "channels_last", "fused", "compiled", *RUNTIME_PATHS, "onnx-fp32-1session",
                   *EXECUTORCH_PATHS)
# A peer's paths: what a timm or torchvision user can assemble by hand.
PEER_PATHS = ("eager", "channels_last", "compiled", *RUNTIME_PATHS, *EXECUTORCH_PATHS)
# train-symmetric: B0 with PyTorch's symmetric padding instead of TF SAME, the architecture of
# timm's efficientnet_b0 and torchvision's (for training from scratch, where TF parity is moot).
# train-fused: effnet's CPU training kernels (effnet.nn.fused: BN + activation, depthwise conv,
# SE backward): faster, and less memory saved for the backward. Native ops on CUDA.
TRAIN_PATHS = ("train", "train-fused", "train-checkpointed", "train-symmetric")
# A peer's training step: eager channels_last, or torch.compile'd (inductor, forward and backward).
PEER_TRAIN_PATHS = ("channels_last", "compiled")


@dataclass(frozen=True)
class Setting:
    model: str | None = "efficientnet_b0"  # None: the network the weights carry
    weights: str | None = None   # a run folder, weights file or tag (default: random weights)
    resolution: int = 224
    threads: int = 2
    drop_path_rate: float = 0.2  # the official rate; given to every contestant that has one
    device: str = "cpu"          # "cuda": everyone runs there, in bf16 autocast and channels_last


ONNX_PATHS = (*RUNTIME_PATHS, "onnx-fp32-1session")  # CPU-only paths (and EXECUTORCH_PATHS)


def split_contestant(contestant: str) -> tuple[str, str]:
    """``ours:PATH`` -> (ours, PATH); ``timm:NAME[:PATH]`` -> (timm:NAME, PATH or eager)."""
    parts = contestant.split(":")
    if parts[0] == "ours":
        return "ours", parts[1] if len(parts) > 1 else "eager"
    return ":".join(parts[:2]), parts[2] if len(parts) > 2 else "eager"


def check_device(setting: Setting) -> None:
    if setting.device not in ("cpu", "cuda"):
        raise ValueError(f"device must be cpu or cuda, got {setting.device!r}")
    if setting.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but this machine has no CUDA device; use --device cpu")


def _on_device(setting: Setting, call: Callable[[], object]) -> Callable[[], object]:
    """On CUDA: ``call`` under bf16 autocast (the AMP every library uses there), waiting for
    the GPU at the end so that the time measured is the work done, not the launch."""
    if setting.device != "cuda":
        return call

    def run() -> object:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = call()
        torch.cuda.synchronize()
        return out

    return run



def peer_module(peer: str, setting: Setting) -> nn.Module:
    """A peer's model, random weights (speed does not depend on them)."""
    return peer_model(peer, drop_path_rate=setting.drop_path_rate)


def our_module(setting: Setting, **kwargs: object) -> nn.Module:
    """Our model: the registered network, or the one ``setting.weights`` (a run folder, a
    weights file or tag) carries, with its weights."""
    return create_model(setting.model, drop_path_rate=setting.drop_path_rate, weights=setting.weights,
                        **kwargs)  # type: ignore[arg-type]


def _batch(setting: Setting, batch: int, nhwc: bool, channels: int = 3) -> torch.Tensor:
    x = torch.randn(batch, channels, setting.resolution, setting.resolution, generator=torch.Generator().manual_seed(0))
    x = x.to(setting.device)
    return x.contiguous(memory_format=torch.channels_last) if nhwc else x


def _calibration(model: nn.Module, setting: Setting) -> np.ndarray:
    channels = model.spec.in_chans  # type: ignore[union-attr]
    if channels == 3:
        try:
            return sample_photos(model, 32, resolution=setting.resolution)
        except ImportError:  # no scikit-image: random images still give the int8 speed
            pass
    return np.random.default_rng(0).standard_normal((32, channels, setting.resolution, setting.resolution),
                                                    dtype=np.float32)


class Timed:
    """A runner (no arguments, one call = one batch) with the precision that actually ran."""

    def __init__(self, call: Callable[[], object], precision: str = "fp32") -> None:
        self.call, self.precision = call, precision

    def __call__(self) -> object:
        return self.call()


def export_peer_onnx(module: nn.Module, path: Path, setting: Setting, channels: int = 3) -> None:
    """A peer's model to ONNX the way its users do it: ``torch.onnx.export`` of the eval
    model at the benchmark's size, any batch, opset 17, constants folded."""
    x = torch.randn(1, channels, setting.resolution, setting.resolution)
    torch.onnx.export(module.eval(), (x,), str(path), input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17, dynamo=False,
                      do_constant_folding=True)


def _calibration_for(setting: Setting, workdir: Path) -> np.ndarray:
    """The calibration images every int8 contestant gets (ours and the peers'), made once."""
    path = workdir / f"calibration_{setting.resolution}.npy"
    if not path.exists():
        np.save(path, _calibration(our_module(setting).eval(), setting))
    return np.load(path)


def onnx_file_runner(fp32: Path, path: str, calibration: Callable[[], np.ndarray], *, threads: int,
                     one_session: bool = False) -> tuple[Callable[[np.ndarray], np.ndarray], str]:
    """What a runtime path (RUNTIME_PATHS) makes of an fp32 ONNX file: a runner (images ->
    logits) and the precision that actually runs. int8 paths quantise the file once, beside it,
    with ``calibration()`` (onnxruntime's QDQ quantiser, or NNCF for OpenVINO)."""
    runtime, _, precision = path.removesuffix("-1session").partition("-")
    file = fp32
    if precision == "int8":
        file = fp32.with_name(fp32.stem + ("_int8.onnx" if runtime == "onnx" else "_int8.xml"))
        if not file.exists():
            (quantize_onnx if runtime == "onnx" else quantize_openvino)(fp32, file, calibration())
    if runtime == "onnx":
        return OnnxRunner(file, threads=threads, streams=1 if one_session else None), precision
    ov = OpenVinoRunner(file, threads=threads, precision="bf16" if precision == "bf16" else "f32")
    return ov, "int8" if precision == "int8" else ov.precision.replace("f32", "fp32")


def runtime_runner(module: nn.Module, name: str, path: str, setting: Setting, batch: int, workdir: Path,
                   *, ours: bool) -> Timed:
    """``module`` exported to ONNX (once per name) and run at ``batch`` by the runtime and
    precision ``path`` names (RUNTIME_PATHS)."""
    if setting.device != "cpu":
        raise ValueError(f"{name}:{path} runs on the CPU (onnxruntime / OpenVINO); leave it out with --device cuda")
    channels = getattr(getattr(module, "spec", None), "in_chans", 3)
    fp32 = workdir / f"{name.replace(':', '_')}_{setting.resolution}.onnx"
    if not fp32.exists():
        if ours:
            export_model(module, fp32, resolution=setting.resolution)
        else:
            export_peer_onnx(module, fp32, setting, channels)
    # Ours with effnet's runner (its micro-batch plan unless the path says one-session); a
    # peer as its users run it: one plain InferenceSession over the whole batch.
    runner, ran = onnx_file_runner(fp32, path, lambda: _calibration_for(setting, workdir), threads=setting.threads,
                                   one_session=not ours or path.endswith("-1session"))
    x = _batch(setting, batch, nhwc=False, channels=channels).cpu().numpy()
    return Timed(lambda: runner(x), ran)


def executorch_runner(module: nn.Module, name: str, path: str, setting: Setting, batch: int, workdir: Path,
                      *, ours: bool) -> Timed:
    """``module`` lowered to an XNNPACK ``.pte`` (once per name and precision) and run at ``batch``."""
    if setting.device != "cpu":
        raise ValueError(f"{name}:{path} runs on the CPU (ExecuTorch); leave it out with --device cuda")
    channels = getattr(getattr(module, "spec", None), "in_chans", 3)
    file = workdir / f"{name.replace(':', '_')}_{setting.resolution}_{path}.pte"
    if not file.exists():
        calibration = _calibration_for(setting, workdir) if path.endswith("int8") else None
        example = torch.zeros(1, channels, setting.resolution, setting.resolution)
        if ours:
            export_model(module, file, format="executorch", resolution=setting.resolution, calibration=calibration)
        else:
            export_executorch(module, file, example, calibration=calibration)
    runner = ExecuTorchRunner(file, threads=setting.threads)
    x = _batch(setting, batch, nhwc=False, channels=channels).cpu().numpy()
    return Timed(lambda: runner(x), path.removeprefix("executorch-"))


def inference_runner(contestant: str, setting: Setting, batch: int, workdir: Path | None = None) -> Timed:
    """``contestant`` is ``ours:PATH`` (PATH in INFERENCE_PATHS) or ``PEER[:PATH]`` (PATH in
    PEER_PATHS; PEER like ``timm:tf_efficientnet_b0``)."""
    owner, path = split_contestant(contestant)
    check_device(setting)
    ours = owner == "ours"
    if path not in (INFERENCE_PATHS if ours else PEER_PATHS):
        raise ValueError(f"unknown inference path {path!r} for {owner}; choose one of "
                         f"{', '.join(INFERENCE_PATHS if ours else PEER_PATHS)}")
    model = (our_module(setting) if ours else peer_module(owner, setting)).eval()
    channels = getattr(getattr(model, "spec", None), "in_chans", 3)
    if path in ONNX_PATHS or path in EXECUTORCH_PATHS:
        workdir = workdir or Path(tempfile.mkdtemp(prefix="effnet-bench-"))
        make = runtime_runner if path in ONNX_PATHS else executorch_runner
        return make(model, owner if not ours else (setting.model or "ours"), path, setting, batch, workdir, ours=ours)
    if ours and path in ("fused", "compiled"):
        model = optimize_for_inference(freeze_same_padding(model.to(setting.device), setting.resolution),
                                       compile=path == "compiled")
    elif path == "compiled":  # a peer compiled as ours is: inductor with freezing (it folds BN itself)
        model = optimize_for_inference(model.to(setting.device), fuse=False, compile=True)
    elif path == "channels_last":
        model = model.to(memory_format=torch.channels_last)
    model = model.to(setting.device)
    x = _batch(setting, batch, path != "eager", channels)

    def run() -> object:
        with torch.inference_mode():
            return model(x)

    return Timed(_on_device(setting, run), precision="bf16" if setting.device == "cuda" else "fp32")


def train_runner(contestant: str, setting: Setting, batch: int) -> Work:
    """One SGD step (forward, cross-entropy, backward, update) at ``batch``, channels_last
    for everyone (the faster layout on CPU for all three libraries)."""
    owner, _, path = contestant.partition(":")
    check_device(setting)
    if owner == "ours":
        model = our_module(setting, padding="symmetric") if path == "train-symmetric" else our_module(setting)
        if path == "train-checkpointed":
            model.set_grad_checkpointing(True)
        elif path == "train-fused":
            use_fused_kernels(model)
        elif path not in ("train", "train-symmetric"):
            raise ValueError(f"unknown training path {path!r}; choose one of {', '.join(TRAIN_PATHS)}")
        channels, classes = model.spec.in_chans, model.num_classes
    else:
        peer, path = split_contestant(contestant)
        if path not in PEER_TRAIN_PATHS:
            raise ValueError(f"unknown training path {path!r} for {peer}; choose one of {', '.join(PEER_TRAIN_PATHS)}")
        model = peer_module(peer, setting)
        channels, classes = 3, 1000
    model = model.train().to(setting.device).to(memory_format=torch.channels_last)
    if owner != "ours" and path == "compiled":
        model = torch.compile(model)  # type: ignore[assignment]  # forward and backward through inductor
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = _batch(setting, batch, nhwc=True, channels=channels)
    y = torch.randint(0, classes, (batch,), generator=torch.Generator().manual_seed(0)).to(setting.device)
    # bf16 autocast on CUDA, fp32 on CPU.
    return training_step(model, optimizer, x, y, amp=setting.device == "cuda")


def set_threads(threads: int) -> None:
    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)  # for subprocesses

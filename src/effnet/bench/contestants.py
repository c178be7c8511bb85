"""What ``effnet bench`` runs: our inference and training paths and the peers' (timm,
torchvision) for the same architecture, each made by name so that a fresh subprocess can
rebuild it to measure memory.

timm and torchvision are imported here lazily, only when a peer is asked for; the library
never imports them.
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
from ..deploy.export import export_model
from ..deploy.fuse import optimize_for_inference
from ..deploy.padding import freeze_same_padding
from ..deploy.quantize import quantize_onnx
from ..deploy.runtime import OnnxRunner
from ..factory import create_model
from ..kernels import use_fused_kernels

# Our model name -> the same architecture in each peer library.
PEERS: dict[str, tuple[str, ...]] = {
    **{f"efficientnet_b{i}": (f"timm:tf_efficientnet_b{i}", f"timm:efficientnet_b{i}", f"torchvision:efficientnet_b{i}")
       for i in range(8)},
    **{f"efficientnet_lite{i}": (f"timm:tf_efficientnet_lite{i}",) for i in range(5)},
    **{f"efficientnetv2_{v}": (f"timm:tf_efficientnetv2_{v}",) for v in ("b0", "b1", "b2", "b3")},
    **{f"efficientnetv2_{v}": (f"timm:tf_efficientnetv2_{v}", f"timm:efficientnetv2_{v}")
       + ((f"torchvision:efficientnet_v2_{v}",) if v != "xl" else ()) for v in ("s", "m", "l", "xl")},
}

INFERENCE_PATHS = ("eager", "channels_last", "fused", "compiled", "onnx-fp32", "onnx-int8")
# train-symmetric: B0 with PyTorch's symmetric padding instead of TF SAME, the architecture of
# timm's efficientnet_b0 and torchvision's (for training from scratch, where TF parity is moot).
# train-fused: effnet's CPU training kernels (effnet.nn.fused: BN + activation, depthwise conv,
# SE backward): faster, and less memory saved for the backward. Native ops on CUDA.
TRAIN_PATHS = ("train", "train-fused", "train-checkpointed", "train-symmetric")


@dataclass(frozen=True)
class Setting:
    model: str | None = "efficientnet_b0"  # None: the network the weights carry
    weights: str | None = None   # a run folder, weights file or tag (default: random weights)
    resolution: int = 224
    threads: int = 2
    drop_path_rate: float = 0.2  # the official rate; given to every contestant that has one
    device: str = "cpu"          # "cuda": everyone runs there, in bf16 autocast and channels_last


ONNX_PATHS = ("onnx-fp32", "onnx-int8")


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


Runner = Callable[[], object]


def peer_module(peer: str, setting: Setting) -> nn.Module:
    """A peer's model, random weights (speed does not depend on them)."""
    library, _, name = peer.partition(":")
    try:
        if library == "timm":
            import timm

            return timm.create_model(name, pretrained=False, drop_path_rate=setting.drop_path_rate)
        if library == "torchvision":
            import torchvision

            return getattr(torchvision.models, name)(weights=None)  # stochastic depth 0.2 is built in
    except ImportError as error:
        raise ImportError(f"the {library} peer needs {library} installed (`pip install {library}`), or leave it "
                          "out with --peers") from error
    raise ValueError(f"unknown peer {peer!r}; peers look like 'timm:tf_efficientnet_b0' or 'torchvision:efficientnet_b0'")


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


def _onnx_runner(model: nn.Module, setting: Setting, batch: int, int8: bool, workdir: Path) -> Runner:
    path = workdir / f"{setting.model or 'ours'}_{setting.resolution}.onnx"
    if not path.exists():
        export_model(model, path, resolution=setting.resolution)
    if int8:
        q = workdir / f"{setting.model or 'ours'}_{setting.resolution}_int8.onnx"
        if not q.exists():
            quantize_onnx(path, q, _calibration(model, setting))
        path = q
    runner = OnnxRunner(path, threads=setting.threads)
    x = _batch(setting, batch, nhwc=False, channels=model.spec.in_chans).cpu().numpy()  # type: ignore[union-attr]
    return lambda: runner(x)


def inference_runner(contestant: str, setting: Setting, batch: int, workdir: Path | None = None) -> Runner:
    """``contestant`` is ``ours:PATH`` (PATH in INFERENCE_PATHS) or ``PEER[:channels_last]``."""
    owner, _, path = contestant.partition(":")
    check_device(setting)
    if owner == "ours":
        model = our_module(setting).eval()
        if path in ONNX_PATHS:
            if setting.device != "cpu":
                raise ValueError(f"{contestant} runs on the CPU (onnxruntime); leave it out with --device cuda")
            workdir = workdir or Path(tempfile.mkdtemp(prefix="effnet-bench-"))
            return _onnx_runner(model, setting, batch, path == "onnx-int8", workdir)
        channels = model.spec.in_chans
        if path in ("fused", "compiled"):
            model = optimize_for_inference(freeze_same_padding(model.to(setting.device), setting.resolution),
                                           compile=path == "compiled")
        elif path == "channels_last":
            model = model.to(memory_format=torch.channels_last)
        elif path != "eager":
            raise ValueError(f"unknown inference path {path!r}; choose one of {', '.join(INFERENCE_PATHS)}")
        nhwc = path != "eager"
    else:
        peer, nhwc = contestant.removesuffix(":channels_last"), contestant.endswith(":channels_last")
        model = peer_module(peer, setting).eval()
        channels = 3
        if nhwc:
            model = model.to(memory_format=torch.channels_last)
    model = model.to(setting.device)
    x = _batch(setting, batch, nhwc, channels)

    def run() -> object:
        with torch.inference_mode():
            return model(x)

    return _on_device(setting, run)


def train_runner(contestant: str, setting: Setting, batch: int) -> Runner:
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
        model = peer_module(contestant.removesuffix(":channels_last"), setting)
        channels, classes = 3, 1000
    model = model.train().to(setting.device).to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = _batch(setting, batch, nhwc=True, channels=channels)
    y = torch.randint(0, classes, (batch,), generator=torch.Generator().manual_seed(0)).to(setting.device)
    cuda = setting.device == "cuda"

    def step() -> object:
        optimizer.zero_grad(set_to_none=True)
        # bf16 autocast on CUDA (no loss scaling needed, unlike fp16), fp32 on CPU.
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            loss = nn.functional.cross_entropy(model(x).float(), y)
        loss.backward()
        optimizer.step()
        if cuda:
            torch.cuda.synchronize()
        return loss

    return step


def set_threads(threads: int) -> None:
    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)  # for subprocesses

"""Where and how a run's model runs: the device, threads and determinism the config asks for,
and the model placed on that device in its layout, with effnet's fused CPU kernels, SyncBN,
DDP, the EMA copy and torch.compile."""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .. import kernels
from ..allocator import keep_freed_cpu_memory
from ..device import resolve_device
from .config import Config, ConfigError
from .distributed import DistInfo
from .ema import create_ema


def process_settings(config: Config, info: DistInfo) -> torch.device:
    """The device, threads and determinism the run asks for."""
    t = config.train
    device = resolve_device(t.device, local_rank=info.local_rank if info.enabled else None)
    if t.threads:
        torch.set_num_threads(t.threads)
    if t.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    if t.amp == "fp16" and device.type != "cuda":
        raise ConfigError("train.amp=fp16 needs CUDA; on CPU use train.amp=bf16")
    return device


def place_model(model: nn.Module, config: Config, info: DistInfo, device: torch.device,
                out: Any) -> tuple[nn.Module, nn.Module, nn.Module | None]:
    """(model, what runs its forward pass, EMA): on the device, in its layout, with the CPU
    kernels, SyncBN, DDP and torch.compile the config asks for. ``out``: the console to
    report to (None on all but the main process)."""
    m, t = config.model, config.train
    model.to(device)
    if m.channels_last:
        model.to(memory_format=torch.channels_last)
    if m.grad_checkpointing:
        model.set_grad_checkpointing(True)
    if device.type == "cpu":
        _use_cpu_speedups(model, config, out)
    if m.sync_bn and info.enabled:
        if device.type != "cuda":
            raise ConfigError("model.sync_bn needs CUDA (PyTorch's SyncBatchNorm does not run on CPU); "
                              "set model.sync_bn=false")
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    forward_model: nn.Module = model
    if info.enabled:
        forward_model = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=m.freeze_backbone_epochs > 0)
    # After DDP has broadcast rank 0's weights, so every rank averages the same start.
    ema = create_ema(model, t.ema_decay, warmup=t.ema_warmup) if t.ema_decay > 0 else None
    if m.compile:
        forward_model = torch.compile(forward_model)  # type: ignore[assignment]
    return model, forward_model, ema


def _use_cpu_speedups(model: nn.Module, config: Config, out: Any) -> None:
    """CPU training: effnet's fused kernels (``model.kernels``) and malloc that keeps freed
    memory. ``auto`` uses the kernels where they apply (float32 channels_last) and they build
    here; ``fused`` insists, and says why when they cannot apply."""
    m, t = config.model, config.train
    if t.cache_cpu_memory:
        keep_freed_cpu_memory()
    if m.kernels == "native":
        return
    if m.kernels == "fused" and not kernels.available():
        raise ConfigError(f"model.kernels=fused: fused CPU kernels are unavailable: {kernels.unavailable_reason()}. "
                          "Set model.kernels=native (or auto).")
    unfit = kernel_mismatch(config)
    if unfit:
        # The swapped layers would run native ops on every step: say so instead of pretending.
        if m.kernels == "fused":
            message = f"model.kernels=fused: falling back to native ops because {unfit}"
            warnings.warn(message, stacklevel=2)
            if out is not None:
                out.print(f"[yellow]{message}[/yellow]")
        return
    if m.kernels == "auto" and not kernels.available():
        if out is not None:
            out.print(f"[dim]fused CPU kernels unavailable ({kernels.unavailable_reason()}); using native ops[/dim]")
        return
    kernels.use_fused_kernels(model)


def kernel_mismatch(config: Config) -> str | None:
    """Why the fused kernels cannot apply to this run's activations (None: they can)."""
    if not config.model.channels_last:
        return ("model.channels_last=false: the kernels run on channels_last float32 activations; "
                "set model.channels_last=true")
    if config.train.amp != "none":
        return f"train.amp={config.train.amp}: the kernels run in float32; set train.amp=none"
    return None


__all__ = ["kernel_mismatch", "place_model", "process_settings"]

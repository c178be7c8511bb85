"""Which device to run on, and what the CPU is: one rule for prediction, training and
benchmarks, and one reader of ``/proc/cpuinfo`` for the kernels' build cache, int8 weight
types, the runtime choice and the benchmarks' peak estimates."""

from __future__ import annotations

import functools
import hashlib
import os
import platform
from dataclasses import dataclass

import torch


def resolve_device(device: str | torch.device | None = None, *, local_rank: int | None = None) -> torch.device:
    """``None`` or ``"auto"`` mean CUDA when it is available, else the CPU. Under DDP
    (``local_rank`` given) a plain ``"cuda"`` becomes this process's GPU. Asking for CUDA
    where there is none is a ValueError that says so."""
    if device is None or device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} was asked for but CUDA is not available here; use 'cpu'")
    if device.type == "cuda" and device.index is None and local_rank is not None:
        return torch.device("cuda", local_rank)
    return device


@dataclass(frozen=True)
class CpuInfo:
    model: str               # "model name" ("" where unknown)
    flags: frozenset[str]    # "flags" (x86) or "Features" (ARM)
    mhz: float               # the first core's "cpu MHz" (0 where unknown)
    fingerprint: str         # model and feature lines: what changes when the machine does


@functools.cache
def cpu_info() -> CpuInfo:
    """The CPU as /proc/cpuinfo describes its first core (empty where it cannot be read)."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            lines = cpuinfo.read().splitlines()
    except OSError:
        return CpuInfo("", frozenset(), 0.0, platform.processor() or platform.machine())

    def first(*keys: str) -> str:
        return next((line.split(":", 1)[1].strip() for line in lines if line.startswith(keys)), "")

    mhz = first("cpu MHz")
    return CpuInfo(first("model name"), frozenset(first("flags", "Features").split()), float(mhz) if mhz else 0.0,
                   "|".join(sorted({line for line in lines if line.startswith(("model name", "flags", "Features"))})))


def cpu_id() -> str:
    """A short name for this CPU: a hash of its model and instruction-set lines."""
    return hashlib.sha256(cpu_info().fingerprint.encode()).hexdigest()[:12]


def measured_on(threads: int | None) -> str:
    """What a cached measurement is valid for: this CPU and the threads it used (None: every core)."""
    return f"{cpu_id()}|threads={threads or os.cpu_count()}"


__all__ = ["CpuInfo", "cpu_info", "cpu_id", "measured_on", "resolve_device"]

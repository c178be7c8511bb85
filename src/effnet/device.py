"""Which device to run on: one rule for prediction, training and benchmarks."""

from __future__ import annotations

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


__all__ = ["resolve_device"]

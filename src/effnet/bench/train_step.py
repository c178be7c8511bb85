"""The training step every speed measurement times, written once: ``effnet bench``'s
contestants, the Fashion-MNIST training benchmark and the epoch planner of the from-scratch
training recipe build their steps here and time them with :mod:`effnet.deploy.timing`."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..deploy.timing import Work

Criterion = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def training_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, *,
                  criterion: Criterion = nn.functional.cross_entropy, amp: bool = False) -> Work:
    """One optimiser step on the fixed batch ``x``, ``y`` per call: gradients set to None,
    forward (under bf16 autocast on ``x``'s device with ``amp``: no loss scaling needed, unlike
    fp16), ``criterion`` on the logits in fp32, backward, update. ``model`` may be a
    ``torch.compile``'d module (forward and backward through inductor). On CUDA the call
    waits for the GPU, so that a timer sees the work done, not the launch."""
    device = x.device.type
    cuda = device == "cuda"

    def step() -> object:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device, dtype=torch.bfloat16, enabled=amp):
            loss = criterion(model(x).float(), y)
        loss.backward()
        optimizer.step()
        if cuda:
            torch.cuda.synchronize()
        return loss

    return step


__all__ = ["training_step"]

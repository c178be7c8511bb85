"""Exponential moving average of the weights *and* the batch-norm statistics.

The official code keeps ``tf.train.ExponentialMovingAverage(decay=0.9999,
num_updates=global_step)`` over all trainable variables plus the BN moving mean/variance,
and evaluates the averaged model. With ``num_updates`` TF uses
``min(decay, (1 + n) / (10 + n))``, so early in training the average follows the model
closely; without that ramp, a 0.9999 average of a short run is still mostly the random
initialisation. ``warmup=False`` gives the plain fixed-decay EMA of
``torch.optim.swa_utils.get_ema_multi_avg_fn``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


def tf_ema_multi_avg_fn(decay: float):  # type: ignore[no-untyped-def]
    """Like ``get_ema_multi_avg_fn`` but with TF's ``num_updates`` ramp."""
    if not 0.0 <= decay <= 1.0:
        raise ValueError(f"EMA decay must be in [0, 1], got {decay}")

    @torch.no_grad()
    def ema_update(ema_params: list[torch.Tensor], current_params: list[torch.Tensor],
                   num_averaged: torch.Tensor) -> None:
        # AveragedModel copies the model on the first update and calls this from the second
        # (num_averaged = 1), i.e. TF's num_updates = number of previous updates.
        n = float(num_averaged)
        d = min(decay, (1.0 + n) / (10.0 + n))
        if ema_params and ema_params[0].is_floating_point():
            torch._foreach_lerp_(ema_params, current_params, 1.0 - d)
        else:  # integer buffers such as BN's num_batches_tracked: keep the latest count
            for e, c in zip(ema_params, current_params):
                e.copy_(c)

    return ema_update


def create_ema(model: nn.Module, decay: float = 0.9999, *, warmup: bool = True,
               device: torch.device | None = None) -> AveragedModel:
    """An ``AveragedModel`` that tracks parameters and buffers (BN statistics)."""
    multi_avg_fn = tf_ema_multi_avg_fn(decay) if warmup else get_ema_multi_avg_fn(decay)
    return AveragedModel(model, device=device, multi_avg_fn=multi_avg_fn, use_buffers=True)


__all__ = ["create_ema", "tf_ema_multi_avg_fn"]

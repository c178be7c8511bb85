"""Optimizers: the official TF-style RMSProp, plus SGD and AdamW as alternatives, and the
parameter groups that keep weight decay off batch norm and biases.

``torch.optim.RMSprop`` differs from the RMSProp EfficientNet was trained with
(``tf.compat.v1.train.RMSPropOptimizer``, used by the official ``utils.build_optimizer``)
in three ways: TF adds epsilon *inside* the square root, TF starts the mean square at 1
instead of 0, and TF folds the learning rate into the momentum buffer (so a learning-rate
change only affects new contributions). With epsilon 1e-3 these differences matter.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

OPTIMIZERS = ("rmsprop_tf", "sgd", "adamw")


class RMSpropTF(torch.optim.Optimizer):
    r"""RMSProp with TensorFlow 1.x semantics (non-centred), as in the official recipe.

    For each parameter ``w`` with gradient ``g`` (L2 weight decay folded into ``g`` as the
    official code adds ``weight_decay * sum(w^2) / 2`` to the loss)::

        g     = g + weight_decay * w
        ms    = decay * ms + (1 - decay) * g^2          # ms starts at 1.0 (TF ones_initializer)
        mom   = momentum * mom + lr * g / sqrt(ms + eps) # eps inside the root; lr inside mom
        w     = w - mom

    Defaults are the paper's: decay 0.9, momentum 0.9, eps 1e-3.
    """

    def __init__(self, params: Iterable[torch.Tensor] | Iterable[dict], lr: float = 0.016, decay: float = 0.9,
                 momentum: float = 0.9, eps: float = 1e-3, weight_decay: float = 0.0) -> None:
        for name, value in (("lr", lr), ("eps", eps), ("weight_decay", weight_decay), ("momentum", momentum)):
            if value < 0:
                raise ValueError(f"RMSpropTF {name} must be >= 0, got {value}")
        if not 0 <= decay < 1:
            raise ValueError(f"RMSpropTF decay must be in [0, 1), got {decay}")
        super().__init__(params, dict(lr=lr, decay=decay, momentum=momentum, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[no-untyped-def]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, decay, momentum = group["lr"], group["decay"], group["momentum"]
            eps, weight_decay = group["eps"], group["weight_decay"]
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            if any(p.grad.is_sparse for p in params):
                raise RuntimeError("RMSpropTF does not support sparse gradients")
            for p in params:
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float32)
                    state["square_avg"] = torch.ones_like(p, memory_format=torch.preserve_format)
                    if momentum > 0:
                        state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            # One multi-tensor (foreach) kernel per operation instead of a loop of small ops per
            # parameter: the same arithmetic, a fraction of the dispatch overhead for the
            # small networks (a few hundred parameter tensors) where it used to be visible.
            states = [self.state[p] for p in params]
            grads = [p.grad for p in params]
            if weight_decay:
                grads = torch._foreach_add(grads, params, alpha=weight_decay)
            torch._foreach_add_([s["step"] for s in states], 1)
            square_avgs = [s["square_avg"] for s in states]
            torch._foreach_mul_(square_avgs, decay)
            torch._foreach_addcmul_(square_avgs, grads, grads, value=1 - decay)
            denominators = torch._foreach_add(square_avgs, eps)
            torch._foreach_sqrt_(denominators)
            updates = torch._foreach_div(grads, denominators)
            if momentum > 0:
                buffers = [s["momentum_buffer"] for s in states]
                torch._foreach_mul_(buffers, momentum)
                torch._foreach_add_(buffers, updates, alpha=lr)
                torch._foreach_sub_(params, buffers)
            else:
                torch._foreach_add_(params, updates, alpha=-lr)
        return loss


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups: weights of convs and linears decay; BN scales/shifts and biases (every
    parameter with fewer than 2 dimensions) do not.

    The official code excludes only batch norm from its L2 loss (``'batch_normalization' not
    in v.name``); excluding biases too is the common PyTorch practice and what effnet does.
    Frozen parameters (``requires_grad=False``) are still listed so that unfreezing later
    needs no new optimizer.
    """
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(name: str, model: nn.Module, lr: float, *, weight_decay: float = 1e-5,
                    momentum: float = 0.9, decay: float = 0.9, eps: float = 1e-3,
                    betas: tuple[float, float] = (0.9, 0.999), nesterov: bool = True) -> torch.optim.Optimizer:
    """``rmsprop_tf`` (the paper's), ``sgd`` (momentum, Nesterov) or ``adamw``.

    For AdamW the weight decay is decoupled (Loshchilov & Hutter), so it wants values around
    0.05, not the 1e-5 of L2 decay; ``eps`` is only used by ``rmsprop_tf``.
    """
    groups = param_groups(model, weight_decay)
    if name == "rmsprop_tf":
        return RMSpropTF(groups, lr=lr, decay=decay, momentum=momentum, eps=eps)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov and momentum > 0)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=betas)
    raise ValueError(f"unknown optimizer {name!r}; choose one of {OPTIMIZERS}")


__all__ = ["OPTIMIZERS", "RMSpropTF", "build_optimizer", "param_groups"]

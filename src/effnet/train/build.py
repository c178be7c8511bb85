"""The model of a training run: a registered name, a small preset or pretrained weights
(fine-tuning: a new classifier for the dataset's classes, optionally a frozen backbone)."""

from __future__ import annotations

from torch import nn

from ..spec import NetworkSpec
from ..spec_json import spec_from_dict, spec_to_dict
from ..zoo import get_spec
from .small import preset


def resolve_network(name: str) -> NetworkSpec:
    """A small preset (``fmnist_s0``..) or any registered model."""
    return preset(name) or get_spec(name)


def is_head(name: str) -> bool:
    return name.startswith("classifier.")


def set_backbone_frozen(model: nn.Module, frozen: bool) -> None:
    """Freeze (or unfreeze) every parameter except the classifier's. Batch norm keeps
    updating its statistics, which adapts them to the new data."""
    for name, p in model.named_parameters():
        if not is_head(name):
            p.requires_grad_(not frozen)


__all__ = ["is_head", "model_from_checkpoint", "resolve_network", "set_backbone_frozen", "spec_from_dict",
           "spec_to_dict"]


def model_from_checkpoint(checkpoint: dict, *, use_ema: bool = True) -> nn.Module:
    """The trained classifier in a training checkpoint (the EMA weights when there are some
    and ``use_ema``), with its class names and eval preprocessing attached."""
    from ..model import build_model
    from ..preprocessing import Preprocessing

    model = build_model(spec_from_dict(checkpoint["spec"]))
    state = checkpoint["model"]
    if use_ema and checkpoint.get("ema") is not None:
        prefix = "module."
        state = {k[len(prefix):]: v for k, v in checkpoint["ema"].items() if k.startswith(prefix)}
    model.load_state_dict(state)
    model.class_names = tuple(checkpoint["classes"])
    model.preprocessing = Preprocessing.from_dict(checkpoint["preprocessing"])
    return model.eval()

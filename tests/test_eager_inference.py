"""Eager inference makes a fresh activation-sized tensor only where a conv, BN, pad or pool
must (activations, SE scaling and residual adds write in place), never copies activations
between memory formats, and gives exactly the logits of the autograd path, which keeps every
op out of place. Speed itself is measured by benchmarks/profile_eager.py, not here."""

from __future__ import annotations

import collections

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from effnet import create_model
from effnet.nn import ConvBnAct, overwrite_allowed

# The ops that must make a new activation: everything else can reuse its input's buffer.
MAKERS = ("conv", "batch_norm", "pad", "pool")
COPIES = ("copy", "clone", "contiguous")

CASES = [("efficientnet_b0", "same"), ("efficientnet_b0", "symmetric"), ("efficientnet_lite0", "same"),
         ("efficientnetv2_b0", "same"), ("mobilenet_v1", "symmetric"), ("resnet50", "symmetric"), ("fmnist_s0", "same")]


class FreshActivations(TorchDispatchMode):
    """Counts, by op, the 4-D outputs with a spatial extent that share no storage with an input."""

    def __init__(self) -> None:
        super().__init__()
        self.fresh: collections.Counter[str] = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        if isinstance(out, torch.Tensor) and out.dim() == 4 and out.shape[-1] * out.shape[-2] > 1:
            inputs = [a.untyped_storage().data_ptr() for a in args if isinstance(a, torch.Tensor)]
            if out.untyped_storage().data_ptr() not in inputs:
                self.fresh[str(func)] += 1
        return out


class InPlaceOps(TorchDispatchMode):
    """The in-place ops (name ending in ``_``) that ran on activations (not on the per-sample
    stochastic-depth masks)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        name = func.overloadpacket.__name__
        target = args[0] if args else None
        if name.endswith("_") and isinstance(target, torch.Tensor) and target.dim() == 4 and target.shape[-1] > 1:
            self.ops.add(name)
        return func(*args, **(kwargs or {}))


def _model(name: str, padding: str) -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model(name, padding=padding).eval()
    for module in model.modules():  # non-trivial BN statistics, so BN is not an identity
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return model


def _input(model: torch.nn.Module, channels_last: bool) -> torch.Tensor:
    size = (29, 31) if model.spec.in_chans == 1 else (67, 75)  # type: ignore[union-attr]
    x = torch.randn(2, model.spec.in_chans, *size, generator=torch.Generator().manual_seed(1))  # type: ignore[union-attr]
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


@pytest.mark.parametrize(("name", "padding"), CASES, ids=[f"{n}-{p}" for n, p in CASES])
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
def test_inference_equals_autograd_path(name: str, padding: str, channels_last: bool) -> None:
    model = _model(name, padding)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    x = _input(model, channels_last)
    before = x.clone()
    with torch.enable_grad():
        reference = model(x).detach()
    with torch.inference_mode():
        fast = model(x)
    assert torch.equal(x, before), "inference overwrote the caller's input"
    assert torch.equal(fast, reference)


def test_feature_maps_survive_later_stages() -> None:
    """A FeatureNet hands out stage outputs that the next stage reads: none may be overwritten."""
    torch.manual_seed(0)
    model = create_model("efficientnet_b0", features_only=True).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.enable_grad():
        reference = [f.detach() for f in model(x)]
    with torch.inference_mode():
        fast = model(x)
    assert all(torch.equal(a, b) for a, b in zip(fast, reference))


@pytest.mark.parametrize("padding", ["same", "symmetric"])
def test_inference_makes_only_conv_bn_and_pad_outputs(padding: str) -> None:
    model = _model("efficientnet_b0", padding).to(memory_format=torch.channels_last)
    x = _input(model, channels_last=True)
    with torch.inference_mode(), FreshActivations() as mode:
        model(x)
    extra = {op: n for op, n in mode.fresh.items() if not any(word in op for word in MAKERS)}
    assert not extra, f"activation-sized buffers made besides conv/BN/pad: {extra}"
    copies = {op: n for op, n in mode.fresh.items() if any(word in op for word in COPIES)}
    assert not copies, f"activations copied (memory-format changes?): {copies}"
    convs = sum(isinstance(m, ConvBnAct) for m in model.modules())
    assert sum(n for op, n in mode.fresh.items() if "conv" in op) == convs  # the counter sees every op


def test_overwrite_only_without_autograd() -> None:
    with torch.enable_grad():
        assert not overwrite_allowed()
    with torch.no_grad():
        assert overwrite_allowed()
    with torch.inference_mode():
        assert overwrite_allowed()


def test_training_forward_stays_out_of_place() -> None:
    """With autograd on (training, Grad-CAM) every op stays as it was: nothing in place."""
    model = _model("efficientnet_b0", "same").train()
    x = torch.randn(2, 3, 64, 64)
    with InPlaceOps() as mode:
        logits = model(x)
    logits.sum().backward()  # and the graph is sound
    assert not mode.ops, f"in-place ops with autograd on: {sorted(mode.ops)}"

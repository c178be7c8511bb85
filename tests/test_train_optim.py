"""TF RMSProp against the TF update rule written out by hand, and the parameter groups."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from effnet.train.optim import RMSpropTF, build_optimizer, param_groups


def tf_rmsprop_reference(w0, grads, lrs, decay=0.9, momentum=0.9, eps=1e-3, weight_decay=0.0):  # type: ignore[no-untyped-def]
    """tf.compat.v1.train.RMSPropOptimizer (non-centred), element by element:
    ms starts at 1; ms <- decay*ms + (1-decay)*g^2; mom <- momentum*mom + lr*g/sqrt(ms+eps); w <- w - mom."""
    w = np.array(w0, dtype=np.float64)
    ms = np.ones_like(w)
    mom = np.zeros_like(w)
    for g, lr in zip(grads, lrs):
        g = np.asarray(g, dtype=np.float64) + weight_decay * w
        ms = decay * ms + (1 - decay) * g * g
        mom = momentum * mom + lr * g / np.sqrt(ms + eps)
        w = w - mom
    return w


def run_ours(w0, grads, lrs, **kwargs):  # type: ignore[no-untyped-def]
    w = nn.Parameter(torch.tensor(w0, dtype=torch.float64))
    opt = RMSpropTF([w], lr=lrs[0], **kwargs)
    for g, lr in zip(grads, lrs):
        for group in opt.param_groups:
            group["lr"] = lr
        w.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
    return w.detach().numpy()


@pytest.mark.parametrize("weight_decay", [0.0, 1e-2])
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_matches_the_tf_update_rule(weight_decay: float, momentum: float) -> None:
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=(7,))
    grads = [rng.normal(scale=s, size=(7,)) for s in np.linspace(0.01, 3.0, 12)]
    # The lr changes mid-way: TF folds lr into the momentum buffer, PyTorch would not.
    lrs = [0.1] * 4 + [0.01] * 4 + [0.3] * 4
    ours = run_ours(w0, grads, lrs, momentum=momentum, weight_decay=weight_decay)
    reference = tf_rmsprop_reference(w0, grads, lrs, momentum=momentum, weight_decay=weight_decay)
    np.testing.assert_allclose(ours, reference, rtol=1e-12, atol=1e-12)


def test_differs_from_torch_rmsprop() -> None:
    """Why it exists: torch's RMSprop (eps outside the root, ms from 0) gives other weights."""
    rng = np.random.default_rng(1)
    w0, grads = rng.normal(size=(5,)), [rng.normal(size=(5,)) for _ in range(5)]
    ours = run_ours(w0, grads, [0.01] * 5)
    w = nn.Parameter(torch.tensor(w0))
    torch_opt = torch.optim.RMSprop([w], lr=0.01, alpha=0.9, eps=1e-3, momentum=0.9)
    for g in grads:
        w.grad = torch.tensor(g)
        torch_opt.step()
    assert np.abs(ours - w.detach().numpy()).max() > 1e-3


def test_first_step_size_is_lr_over_root_of_ms() -> None:
    # ms starts at 1, so the first step is lr * g / sqrt(0.9 + 0.1 g^2 + eps), not ~lr * sign(g).
    w = nn.Parameter(torch.zeros(1, dtype=torch.float64))
    opt = RMSpropTF([w], lr=0.5, momentum=0.0)
    w.grad = torch.full((1,), 0.01, dtype=torch.float64)
    opt.step()
    assert w.item() == pytest.approx(-0.5 * 0.01 / np.sqrt(0.9 + 0.1 * 1e-4 + 1e-3))


def test_state_dict_round_trip_continues_identically() -> None:
    torch.manual_seed(0)
    a = nn.Linear(3, 2)
    b = nn.Linear(3, 2)
    b.load_state_dict(a.state_dict())
    opt_a = RMSpropTF(a.parameters(), lr=0.1)
    x = torch.randn(4, 3)
    a(x).square().sum().backward()
    opt_a.step()
    b.load_state_dict(a.state_dict())
    opt_b = RMSpropTF(b.parameters(), lr=0.1)
    opt_b.load_state_dict(copy.deepcopy(opt_a.state_dict()))  # as if read from disk
    for model, opt in ((a, opt_a), (b, opt_b)):
        opt.zero_grad()
        model(x).square().sum().backward()
        opt.step()
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


def test_bad_hyperparameters_are_rejected() -> None:
    with pytest.raises(ValueError, match="decay"):
        RMSpropTF([nn.Parameter(torch.zeros(1))], decay=1.0)
    with pytest.raises(ValueError, match="lr"):
        RMSpropTF([nn.Parameter(torch.zeros(1))], lr=-1)


def test_weight_decay_not_on_batch_norm_or_biases() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2))
    decay, no_decay = param_groups(model, 1e-5)
    assert decay["weight_decay"] == 1e-5 and no_decay["weight_decay"] == 0.0
    assert {id(p) for p in decay["params"]} == {id(model[0].weight), id(model[3].weight)}
    assert {id(p) for p in no_decay["params"]} == {id(model[1].weight), id(model[1].bias), id(model[3].bias)}


@pytest.mark.parametrize("name,cls", [("rmsprop_tf", RMSpropTF), ("sgd", torch.optim.SGD),
                                      ("adamw", torch.optim.AdamW)])
def test_build_optimizer(name: str, cls: type) -> None:
    opt = build_optimizer(name, nn.Linear(2, 2), 0.1, weight_decay=1e-5)
    assert isinstance(opt, cls) and [g["weight_decay"] for g in opt.param_groups] == [1e-5, 0.0]
    with pytest.raises(ValueError, match="rmsprop_tf"):
        build_optimizer("adam", nn.Linear(2, 2), 0.1)

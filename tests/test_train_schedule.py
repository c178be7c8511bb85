"""The official learning-rate schedule, the linear scaling rule, cosine, and EMA."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from effnet.train.ema import create_ema
from effnet.train.schedule import LrFactor, build_scheduler, scaled_lr


def lrs(scheduler, optimizer, steps):  # type: ignore[no-untyped-def]
    out = []
    for _ in range(steps):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return out


def test_linear_scaling_rule_gives_the_papers_lr() -> None:
    assert scaled_lr(0.016, 4096) == pytest.approx(0.256)  # paper: 0.256 at batch 4096
    assert scaled_lr(0.016, 256) == pytest.approx(0.016)


def test_tf_exponential_warmup_then_staircase() -> None:
    steps_per_epoch = 10
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = build_scheduler(opt, "tf_exponential", steps_per_epoch=steps_per_epoch, epochs=20, warmup_epochs=5)
    got = lrs(sched, opt, 200)
    for step, lr in enumerate(got):
        if step < 50:  # official: lr * step / warmup_steps
            expected = step / 50
        else:  # official: exponential_decay(..., decay_steps=2.4 epochs, 0.97, staircase=True) from step 0
            expected = 0.97 ** (step // 24)
        assert lr == pytest.approx(expected), step
    assert got[50] == pytest.approx(0.97 ** 2)  # the staircase counts from step 0, not from warm-up end
    assert got[71] == got[50] and got[72] == pytest.approx(0.97 ** 3)


def test_cosine_with_warmup() -> None:
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=2.0)
    sched = build_scheduler(opt, "cosine", steps_per_epoch=10, epochs=10, warmup_epochs=1, min_lr_ratio=0.1)
    got = lrs(sched, opt, 101)
    assert got[5] == pytest.approx(1.0)
    assert got[10] == pytest.approx(2.0)
    assert got[55] == pytest.approx(2.0 * (0.1 + 0.9 * 0.5))
    assert got[100] == pytest.approx(0.2)
    assert all(a >= b for a, b in zip(got[10:], got[11:]))


def test_schedule_state_round_trip() -> None:
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = build_scheduler(opt, "tf_exponential", steps_per_epoch=3, epochs=5, warmup_epochs=1)
    lrs(sched, opt, 7)
    opt2 = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched2 = build_scheduler(opt2, "tf_exponential", steps_per_epoch=3, epochs=5, warmup_epochs=1)
    sched2.load_state_dict(sched.state_dict())
    opt2.param_groups[0]["lr"] = opt.param_groups[0]["lr"]
    assert lrs(sched2, opt2, 5) == lrs(sched, opt, 5)


def test_unknown_schedule() -> None:
    with pytest.raises(ValueError, match="tf_exponential"):
        LrFactor("step", 10, 10)


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2))


def test_ema_averages_weights_and_batch_norm_statistics() -> None:
    model = _net()
    decay = 0.9
    ema = create_ema(model, decay, warmup=False)
    expected = copy.deepcopy(model)
    for step in range(4):
        model.train()
        model(torch.randn(8, 1, 3, 3) + step)  # moves BN running stats
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.1 * (step + 1))
        ema.update_parameters(model)
        with torch.no_grad():
            for e, m in zip(list(expected.parameters()) + list(expected.buffers())[:2],
                            list(model.parameters()) + list(model.buffers())[:2]):
                e.copy_(m if step == 0 else decay * e + (1 - decay) * m)
    for name in ("0.weight", "1.bias"):
        torch.testing.assert_close(dict(ema.module.named_parameters())[name], dict(expected.named_parameters())[name])
    ema_bn, model_bn = ema.module[1], model[1]
    torch.testing.assert_close(ema_bn.running_mean, expected[1].running_mean)
    torch.testing.assert_close(ema_bn.running_var, expected[1].running_var)
    assert not torch.allclose(ema_bn.running_mean, model_bn.running_mean)  # it is an average, not a copy


def test_ema_tf_warmup_uses_num_updates() -> None:
    model = _net()
    ema = create_ema(model, 0.9999, warmup=True)
    ema.update_parameters(model)  # first update copies
    before = ema.module[0].weight.detach().clone()
    with torch.no_grad():
        model[0].weight.add_(1.0)
    ema.update_parameters(model)  # num_updates = 1: decay min(0.9999, 2/11)
    d = 2 / 11
    torch.testing.assert_close(ema.module[0].weight, d * before + (1 - d) * model[0].weight)
    assert math.isclose(d, (1 + 1) / (10 + 1))

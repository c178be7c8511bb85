"""The fused CPU kernels (effnet/kernels) against native PyTorch: BN + activation against
nn.BatchNorm2d and the activation (outputs, gradients, running statistics, NaN, layouts that
must fall back, torch.compile, memory saved for the backward), the depthwise convolution with
TF SAME and symmetric padding, the squeeze-and-excitation backward, whole training steps, and
the kernel cache."""

from __future__ import annotations

import contextlib
import copy
import os
import shutil

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from effnet.kernels import FusedConvBnAct, FusedSqueezeExcite, use_fused_kernels
from effnet.kernels import compile as kernel_build
from effnet.kernels import ops as fused
from effnet.model import build_model
from effnet.nn import ConvBnAct, SqueezeExcite
from effnet.nn.layers import activation
from effnet.zoo.small import fashion_mnist_net

# Skipped only where there is no C compiler at all; with one, a kernel that fails to build
# must fail the suite (test_kernels_build_where_there_is_a_compiler), not skip it.
HAVE_COMPILER = bool(os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc"))
pytestmark = pytest.mark.skipif(not HAVE_COMPILER, reason="no C compiler to build effnet's CPU kernels")


def test_kernels_build_where_there_is_a_compiler() -> None:
    assert kernel_build.available(), kernel_build.unavailable_reason()


def _fused(layer: nn.Module) -> nn.Module:
    """The layer with the fused kernels swapped in (sharing its parameters)."""
    holder = nn.Sequential(layer)
    use_fused_kernels(holder)
    return holder[0]


def _pair(channels: int, momentum: float | None = 0.1) -> tuple[nn.BatchNorm2d, nn.BatchNorm2d]:
    bn = nn.BatchNorm2d(channels, eps=1e-3, momentum=momentum).train()
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-1.0, 1.0)
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.5, 2.0)
    return bn, copy.deepcopy(bn)


@contextlib.contextmanager
def _threads(count: int):  # type: ignore[no-untyped-def]
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _grad_like(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)).contiguous(memory_format=torch.channels_last)


def _input(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    # Mean far from zero and a per-channel spread: checks the variance is not computed naively.
    x = torch.randn(shape, generator=g) * torch.linspace(0.5, 3.0, shape[1]).view(1, -1, 1, 1) + 4.0
    return x.contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("act", [None, "silu", "relu", "relu6"])
@pytest.mark.parametrize("shape", [(8, 16, 7, 7), (3, 17, 5, 9), (2, 130, 4, 4), (64, 3, 1, 1)])
@pytest.mark.parametrize("threads", [1, 2])
def test_matches_native_batch_norm_and_activation(act, shape, threads) -> None:  # type: ignore[no-untyped-def]
    native_bn, fused_bn = _pair(shape[1])
    x = _input(shape)
    grad = _grad_like(shape, 1)
    x_native, x_fused = x.clone().requires_grad_(), x.clone().requires_grad_()
    with _threads(threads):
        assert fused.applicable(x_fused, fused_bn, act)
        y_native = activation(act)(native_bn(x_native))
        y_fused = fused.batch_norm_act(x_fused, fused_bn, act)
        y_native.backward(grad)
        y_fused.backward(grad)
    assert y_fused.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(y_fused, y_native, rtol=1e-5, atol=2e-5)
    torch.testing.assert_close(x_fused.grad, x_native.grad, rtol=1e-4, atol=2e-5)
    scale = lambda t: t.abs().max().clamp_min(1.0).item()  # noqa: E731
    for name in ("weight", "bias"):
        ours, theirs = getattr(fused_bn, name).grad, getattr(native_bn, name).grad
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5 * scale(theirs))
    for name in ("running_mean", "running_var"):
        torch.testing.assert_close(getattr(fused_bn, name), getattr(native_bn, name), rtol=1e-5, atol=1e-6)
    assert int(fused_bn.num_batches_tracked) == int(native_bn.num_batches_tracked) == 1


def test_cumulative_average_when_momentum_is_none() -> None:
    native_bn, fused_bn = _pair(6, momentum=None)
    for seed in range(3):
        x = _input((4, 6, 5, 5), seed)
        native_bn(x)
        fused.batch_norm_act(x, fused_bn, "silu")
    torch.testing.assert_close(fused_bn.running_mean, native_bn.running_mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fused_bn.running_var, native_bn.running_var, rtol=1e-5, atol=1e-6)


def test_nan_in_gives_nan_out_as_native() -> None:
    _, bn = _pair(4)
    x = _input((2, 4, 3, 3))
    x[0, 1, 1, 1] = float("nan")
    y = fused.batch_norm_act(x, bn, "silu")
    native = F.silu(F.batch_norm(x, None, None, bn.weight, bn.bias, True, 0.1, bn.eps))
    assert torch.equal(torch.isnan(y), torch.isnan(native))
    assert torch.isnan(y[:, 1]).all() and not torch.isnan(y[:, 0]).any()


def test_same_result_every_time() -> None:
    _, bn = _pair(24)
    x = _input((16, 24, 9, 9)).requires_grad_()
    outs = []
    for _ in range(2):
        y = fused.batch_norm_act(x, copy.deepcopy(bn), "silu")
        (gx,) = torch.autograd.grad(y, x, torch.ones_like(y))
        outs.append((y, gx))
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])


@pytest.mark.parametrize("case", ["nchw", "eval", "float64", "bf16", "one value per channel", "no affine"])
def test_not_applicable_where_it_would_differ(case: str) -> None:
    bn = nn.BatchNorm2d(8, affine=case != "no affine")
    x = _input((4, 8, 5, 5))
    if case == "nchw":
        x = x.contiguous()
    elif case == "eval":
        bn.eval()
    elif case == "float64":
        x, bn = x.double(), bn.double()
    elif case == "bf16":
        x = x.bfloat16()
    elif case == "one value per channel":
        x = _input((1, 8, 1, 1))
    assert not fused.applicable(x, bn, "silu")


def test_layer_falls_back_to_native_for_nchw_input() -> None:
    layer = ConvBnAct(4, 8, 3, act="silu", bn_eps=1e-3, bn_momentum=0.01, padding="same").train()
    reference = copy.deepcopy(layer)
    layer = _fused(layer)
    assert isinstance(layer, FusedConvBnAct)
    x = torch.randn(2, 4, 6, 6)  # NCHW: the native path, bit for bit
    assert torch.equal(layer(x), reference(x))


def _saved_bytes(module: nn.Module, x: torch.Tensor) -> int:
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        module(x).sum().backward()
    return sum(seen.values())


def test_saves_one_activation_instead_of_two() -> None:
    native = ConvBnAct(8, 64, 1, act="silu", bn_eps=1e-3, bn_momentum=0.01, padding="same").train()
    fast = _fused(copy.deepcopy(native))
    x = torch.randn(8, 8, 16, 16).contiguous(memory_format=torch.channels_last)
    activation_bytes = 8 * 64 * 16 * 16 * 4
    native_saved, fused_saved = _saved_bytes(native, x), _saved_bytes(fast, x)
    # native: conv input, BN input (conv output), SiLU input (BN output); fused: no SiLU input.
    assert native_saved - fused_saved >= activation_bytes


@pytest.mark.parametrize("shape", [(4, 24, 7, 7), (3, 33, 5, 2), (64, 8, 1, 1)])
@pytest.mark.parametrize("frozen", [False, True])
@pytest.mark.parametrize("threads", [1, 2])
def test_squeeze_excite_matches_native(shape, frozen, threads) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    native = SqueezeExcite(shape[1], max(1, shape[1] // 4), "silu").train()
    fast = _fused(copy.deepcopy(native))
    assert isinstance(fast, FusedSqueezeExcite)
    if frozen:  # a frozen reduce layer gets no gradient, the rest still do
        for module in (native, fast):
            module.reduce.requires_grad_(False)
    x = _input(shape)
    grad = _grad_like(shape, 2)
    x_native, x_fast = x.clone().requires_grad_(), x.clone().requires_grad_()
    with _threads(threads):
        assert fused.squeeze_excite_applicable(x_fast)
        y_native, y_fast = native(x_native), fast(x_fast)
        y_native.backward(grad)
        y_fast.backward(grad)
    torch.testing.assert_close(y_fast, y_native, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(x_fast.grad, x_native.grad, rtol=1e-4, atol=1e-5)
    for (name, a), b in zip(native.named_parameters(), fast.parameters()):
        if frozen and name.startswith("reduce"):
            assert a.grad is None and b.grad is None
        else:
            torch.testing.assert_close(b.grad, a.grad, rtol=1e-4, atol=1e-5, msg=name)


def test_squeeze_excite_falls_back_outside_its_scope() -> None:
    x = _input((2, 8, 4, 4))
    assert not fused.squeeze_excite_applicable(x.contiguous())
    assert not fused.squeeze_excite_applicable(x.double())
    with torch.no_grad():
        assert not fused.squeeze_excite_applicable(x)


@pytest.mark.parametrize("kernel,stride,size", [(3, 1, 7), (3, 2, 8), (3, 2, 7), (5, 1, 6), (5, 2, 9), (5, 2, 2)])
@pytest.mark.parametrize("padding", ["same", "symmetric"])
@pytest.mark.parametrize("threads", [1, 2])
def test_depthwise_conv_matches_native(kernel, stride, size, padding, threads) -> None:  # type: ignore[no-untyped-def]
    channels = 19
    layer = ConvBnAct(channels, channels, kernel, stride, groups=channels, act="silu", bn_eps=1e-3,
                      bn_momentum=0.01, padding=padding).train()
    x = _input((3, channels, size, size + 1))
    pads = layer.pads(x)
    assert fused.depthwise_applicable(x, layer.conv)
    x_native, x_fast = x.clone().requires_grad_(), x.clone().requires_grad_()
    weight = layer.conv.weight
    native = F.conv2d(F.pad(x_native, pads), weight, None, stride, 0, 1, channels)
    with _threads(threads):
        fast = fused.depthwise(x_fast, layer.conv, pads)
        grad = _grad_like(tuple(native.shape), 3)
        (dx_native, dw_native), (dx_fast, dw_fast) = (torch.autograd.grad(y, (xi, weight), grad) for y, xi in
                                                      ((native, x_native), (fast, x_fast)))
    assert fast.shape == native.shape and fast.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(fast, native, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(dx_fast, dx_native, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(dw_fast, dw_native, rtol=1e-4, atol=1e-4)


def test_depthwise_not_applicable_to_other_convs() -> None:
    x = _input((2, 8, 5, 5))
    depthwise = nn.Conv2d(8, 8, 3, groups=8, bias=False)
    assert fused.depthwise_applicable(x, depthwise)
    assert not fused.depthwise_applicable(x, nn.Conv2d(8, 8, 3, bias=False))  # dense
    assert not fused.depthwise_applicable(x, nn.Conv2d(8, 8, 3, groups=8, bias=True))
    assert not fused.depthwise_applicable(x, nn.Conv2d(8, 8, 3, groups=8, dilation=2, bias=False))
    assert not fused.depthwise_applicable(x.contiguous(), depthwise)


def _no_dropout(model: nn.Module) -> nn.Module:
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
        if hasattr(module, "rate"):
            module.rate = 0.0
    return model


def test_model_training_steps_match_native() -> None:
    torch.manual_seed(0)
    native = _no_dropout(build_model(fashion_mnist_net(0.0))).train().to(memory_format=torch.channels_last)
    fast = copy.deepcopy(native)
    layers = sum(isinstance(m, (ConvBnAct, SqueezeExcite)) for m in fast.modules())
    parameters = [id(p) for p in fast.parameters()]
    assert use_fused_kernels(fast) == layers > 0
    assert not any(type(m) in (ConvBnAct, SqueezeExcite) for m in fast.modules())  # every layer swapped
    assert [id(p) for p in fast.parameters()] == parameters  # the same parameters, not copies
    assert fast.state_dict().keys() == native.state_dict().keys()
    optimizers = [torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9) for m in (native, fast)]
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        x = torch.randn(32, 1, 28, 28, generator=g).contiguous(memory_format=torch.channels_last)
        y = torch.randint(0, 10, (32,), generator=g)
        for model, optimizer in zip((native, fast), optimizers):
            optimizer.zero_grad()
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
    for (name, a), b in zip(native.state_dict().items(), fast.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5, msg=name)
    x = torch.randn(4, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    native.eval()
    fast.eval()
    torch.testing.assert_close(fast(x), native(x), rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_torch_compile_keeps_the_fused_ops() -> None:
    torch.manual_seed(0)
    eager = _no_dropout(build_model(fashion_mnist_net(0.0))).train().to(memory_format=torch.channels_last)
    use_fused_kernels(eager)
    compiled_model = copy.deepcopy(eager)
    torch._dynamo.reset()
    compiled = torch.compile(compiled_model, fullgraph=True)  # a graph break would raise here
    x = torch.randn(16, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    out_eager, out_compiled = eager(x), compiled(x)
    out_eager.square().mean().backward()
    out_compiled.square().mean().backward()
    torch.testing.assert_close(out_compiled, out_eager, rtol=1e-4, atol=1e-4)
    for a, b in zip(eager.parameters(), compiled_model.parameters()):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-3, atol=1e-5)
    torch.testing.assert_close(compiled_model.stem.bn.running_mean, eager.stem.bn.running_mean)


def test_kernel_is_built_once_into_the_cache(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("EFFNET_CACHE", str(tmp_path))
    kernel_build.build.cache_clear()
    try:
        assert kernel_build.available()
        built = list((tmp_path / "kernels").iterdir())
        assert len(built) == 1 and built[0].suffix == ".so"  # no scratch files left behind
        stamp = built[0].stat().st_mtime_ns
        kernel_build.build.cache_clear()
        assert kernel_build.available() and built[0].stat().st_mtime_ns == stamp
    finally:
        kernel_build.build.cache_clear()


@pytest.fixture()
def fresh_build(monkeypatch, tmp_path):  # type: ignore[no-untyped-def]
    """A kernel build that sees this test's environment (and an empty kernel cache)."""
    monkeypatch.setenv("EFFNET_CACHE", str(tmp_path / "cache"))
    kernel_build.build.cache_clear()
    yield monkeypatch
    kernel_build.build.cache_clear()


def test_without_a_compiler_the_model_says_why(fresh_build, tmp_path) -> None:  # type: ignore[no-untyped-def]
    empty = tmp_path / "bin"
    empty.mkdir()
    fresh_build.delenv("CC", raising=False)
    fresh_build.setenv("PATH", str(empty))  # no cc, no gcc: nothing to build with
    assert not kernel_build.available()
    assert "no C compiler" in kernel_build.unavailable_reason()
    model = build_model(fashion_mnist_net(0.0))
    with pytest.raises(RuntimeError, match="no C compiler"):
        use_fused_kernels(model)
    assert not any(isinstance(m, (FusedConvBnAct, FusedSqueezeExcite)) for m in model.modules())
    assert use_fused_kernels(model, enable=False) == 0  # turning them off always works


@pytest.mark.parametrize(("value", "on"), [("0", True), ("false", True), ("", True), ("1", False), ("yes", False)])
def test_effnet_no_kernels_means_what_it_says(fresh_build, value, on) -> None:  # type: ignore[no-untyped-def]
    fresh_build.setenv("EFFNET_NO_KERNELS", value)
    assert kernel_build.available() is on
    if not on:
        assert "EFFNET_NO_KERNELS" in kernel_build.unavailable_reason()


def test_effnet_no_kernels_with_a_value_it_does_not_know_is_an_error(fresh_build) -> None:  # type: ignore[no-untyped-def]
    fresh_build.setenv("EFFNET_NO_KERNELS", "maybe")
    with pytest.raises(ValueError, match="EFFNET_NO_KERNELS='maybe' is not understood"):
        kernel_build.available()


def test_swapping_back_restores_the_native_layers() -> None:
    model = build_model(fashion_mnist_net(0.0))
    n = use_fused_kernels(model)
    assert n > 0 and use_fused_kernels(model, enable=False) == 0
    assert all(type(m) is not FusedConvBnAct for m in model.modules())


@pytest.mark.parametrize("dtype", [torch.float16, torch.float64, torch.bfloat16])
def test_kernels_refuse_other_precisions_instead_of_reading_garbage(dtype) -> None:  # type: ignore[no-untyped-def]
    conv = nn.Conv2d(8, 8, 3, groups=8, bias=False)
    x = _input((2, 8, 6, 6)).to(dtype)
    with pytest.raises(ValueError, match=f"effnet kernel: x is {dtype}"):
        fused.depthwise(x, conv, (1, 1, 1, 1))
    with pytest.raises(ValueError, match=f"effnet kernel: x is {dtype}"):
        fused.batch_norm_act(x, nn.BatchNorm2d(8), "silu")
    with pytest.raises(ValueError, match=f"effnet kernel: x is {dtype}"):
        fused.squeeze_excite(x, lambda pooled: pooled, [])


def test_kernels_check_shapes_before_touching_memory() -> None:
    x = _input((2, 8, 6, 6))
    with pytest.raises(ValueError, match=r"depthwise weight must have shape \(8, 1, 3, 3\)"):
        fused.depthwise(x, nn.Conv2d(4, 4, 3, groups=4, bias=False), (1, 1, 1, 1))
    with pytest.raises(ValueError, match="BN weight must have shape"):
        fused.batch_norm_act(x, nn.BatchNorm2d(5), "silu")
    with pytest.raises(ValueError, match="must have 4 dimensions"):
        fused.depthwise(x[0], nn.Conv2d(8, 8, 3, groups=8, bias=False), (1, 1, 1, 1))
    with pytest.raises(ValueError, match="bad depthwise geometry"):
        torch.ops.effnet.depthwise_conv(x, torch.zeros(8, 1, 3, 3), 0, 1, 1, 6, 6)
    with pytest.raises(ValueError, match="gradient must have shape"):
        torch.ops.effnet.depthwise_conv_backward(torch.zeros(2, 8, 3, 3), x, torch.zeros(8, 1, 3, 3), 1, 1, 1, 6, 6)

"""Fused CPU kernels for training: batch norm + activation (the same function as
``act(bn(x))`` in training mode), the depthwise convolution, and the squeeze-and-excitation
backward, each in fewer passes over memory than native PyTorch.

On the CPU the small EfficientNets are memory-bound: native PyTorch runs BN and the
activation as separate operators, and each reads and writes a whole activation, forward and
backward (BN, SiLU and their gradients were 42% of a Fashion-MNIST training step). The kernel
in ``_cpu_kernels.c`` does the BN + activation forward in two reads and one write and the
backward in four reads and two writes (storing the activation's derivative once instead of
computing it twice), and saves only BN's input for the backward (native also saves BN's
output), so it is both faster and leaner. The depthwise convolution takes SAME padding
without a padded copy and computes both gradients in one pass; the SE backward is described
at :class:`_SqueezeExcite`. Results agree with native to float rounding (tests/test_fused.py).

Each applies to float32 channels_last activations on the CPU in training mode (see the
``*applicable`` functions). Every entry that reaches the C code checks dtype, device, shape
and layout first and raises a ValueError that says what it got: the C code trusts its
pointers, so nothing else may reach it.

BN + activation and the depthwise conv are ``torch.library`` custom ops, so ``torch.compile``
keeps them whole and compiles the rest of the step around them; the SE function is
eager-only (compiled graphs use the native SE).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .checks import ACTIVATIONS, check, check_activation, check_depthwise, pointer
from .compile import library as _library


def _affine(weight: Tensor, bias: Tensor, mean: Tensor, var: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """BN in training mode as ``x * scale + shift`` per channel (forward and backward use this
    same rounding, so the backward recomputes exactly the forward's pre-activation)."""
    scale = weight * torch.rsqrt(var + eps)
    return scale.contiguous(), (bias - mean * scale).contiguous()


def _sums(kernel, threads: int, channels: int, *args) -> Tensor:  # type: ignore[no-untyped-def]
    partial = torch.zeros(threads, 2 * channels, dtype=torch.float64)
    out = torch.empty(2 * channels, dtype=torch.float64)
    if kernel(*args, pointer(partial), pointer(out), threads) != 0:
        raise MemoryError("the fused BN kernel could not allocate its per-thread sums")
    return out


@torch.library.custom_op("effnet::bn_act_train", mutates_args=())
def bn_act_train(x: Tensor, weight: Tensor, bias: Tensor, eps: float, act: int) -> tuple[Tensor, Tensor, Tensor]:
    """``act(batch_norm(x))`` with batch statistics; returns (y, mean, biased variance)."""
    check_activation(x, weight, bias, eps, act)
    library = _library()
    x = x.contiguous(memory_format=torch.channels_last)
    weight, bias = weight.contiguous(), bias.contiguous()
    n, c, h, w = x.shape
    rows, threads = n * h * w, torch.get_num_threads()
    shift = x[0, :, 0, 0].contiguous()  # a rough mean keeps the one-pass variance accurate
    sums = _sums(library.effnet_bn_stats, threads, c, pointer(x), rows, c, pointer(shift))
    centred = sums[:c] / rows
    mean = (shift.double() + centred).float()
    var = (sums[c:] / rows - centred * centred).clamp_min(0).float()
    scale, shift = _affine(weight.float(), bias.float(), mean, var, eps)
    y = torch.empty_like(x)
    library.effnet_bn_act_apply(pointer(x), pointer(y), rows, c, pointer(scale), pointer(shift), act, threads)
    return y, mean, var


@bn_act_train.register_fake
def _(x: Tensor, weight: Tensor, bias: Tensor, eps: float, act: int) -> tuple[Tensor, Tensor, Tensor]:
    return (torch.empty_like(x, memory_format=torch.channels_last), x.new_empty(x.shape[1]),
            x.new_empty(x.shape[1]))


@torch.library.custom_op("effnet::bn_act_train_backward", mutates_args=())
def bn_act_train_backward(grad: Tensor, x: Tensor, weight: Tensor, bias: Tensor, mean: Tensor, var: Tensor,
                          eps: float, act: int) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients of :func:`bn_act_train`'s ``y`` with respect to x, weight and bias."""
    check_activation(x, weight, bias, eps, act)
    check("gradient", grad, tuple(x.shape))
    check("batch mean", mean, (x.shape[1],))
    check("batch variance", var, (x.shape[1],))
    library = _library()
    mean, var = mean.contiguous(), var.contiguous()
    x = x.contiguous(memory_format=torch.channels_last)
    grad = grad.contiguous(memory_format=torch.channels_last)
    n, c, h, w = x.shape
    rows, threads = n * h * w, torch.get_num_threads()
    scale, shift = _affine(weight.float(), bias.float(), mean, var, eps)
    dx = torch.empty_like(x)  # holds dL/dz after the first pass, dL/dx after the second
    sums = _sums(library.effnet_bn_act_backward_sums, threads, c, pointer(grad), pointer(x), pointer(dx), rows, c,
                 pointer(scale), pointer(shift), pointer(mean), act)
    grad_z, grad_z_centred = sums[:c], sums[c:]  # sum of dL/dz, sum of dL/dz * (x - mean)
    invstd, scale64 = torch.rsqrt(var.double() + eps), scale.double()
    # dx = scale * (dz - mean(dz) - (x - mean) * invstd^2 * mean(dz * (x - mean))) = a dz + b x + d
    b = -scale64 * invstd * invstd * grad_z_centred / rows
    d = -scale64 * grad_z / rows - b * mean.double()
    b32, d32 = b.float(), d.float()  # named: the kernel reads them through raw pointers
    library.effnet_bn_act_backward_apply(pointer(dx), pointer(x), rows, c, pointer(scale), pointer(b32), pointer(d32), threads)
    return dx, (invstd * grad_z_centred).to(weight.dtype), grad_z.to(bias.dtype)


@bn_act_train_backward.register_fake
def _(grad: Tensor, x: Tensor, weight: Tensor, bias: Tensor, mean: Tensor, var: Tensor, eps: float,
      act: int) -> tuple[Tensor, Tensor, Tensor]:
    return torch.empty_like(x, memory_format=torch.channels_last), torch.empty_like(weight), torch.empty_like(bias)


def _setup_context(ctx, inputs, output) -> None:  # type: ignore[no-untyped-def]
    x, weight, bias, eps, act = inputs
    _, mean, var = output
    ctx.save_for_backward(x, weight, bias, mean, var)
    ctx.eps, ctx.act = eps, act


def _backward(ctx, grad_y: Tensor, grad_mean: Tensor | None, grad_var: Tensor | None):  # type: ignore[no-untyped-def]
    x, weight, bias, mean, var = ctx.saved_tensors
    dx, dweight, dbias = torch.ops.effnet.bn_act_train_backward(grad_y, x, weight, bias, mean, var, ctx.eps, ctx.act)
    return dx, dweight, dbias, None, None


bn_act_train.register_autograd(_backward, setup_context=_setup_context)


def applicable(x: Tensor, bn: nn.Module, act: str | None) -> bool:
    """Whether :func:`batch_norm_act` computes what ``act(bn(x))`` would here (the caller has
    checked :func:`available` once; this runs on every call, also inside ``torch.compile``)."""
    return (type(bn) is nn.BatchNorm2d and bn.training and bn.affine and bn.track_running_stats
            and act in ACTIVATIONS and x.device.type == "cpu" and x.dtype == torch.float32 and x.dim() == 4
            and bn.weight.dtype == torch.float32 and x.is_contiguous(memory_format=torch.channels_last)
            and x.numel() > x.shape[1])  # one value per channel: leave the error to native BN


def batch_norm_act(x: Tensor, bn: nn.BatchNorm2d, act: str | None) -> Tensor:
    """``activation(act)(bn(x))`` for a BN in training mode, running statistics updated as
    ``nn.BatchNorm2d`` updates them (unbiased variance, momentum or cumulative average)."""
    check("x", x, 4)
    y, mean, var = torch.ops.effnet.bn_act_train(x, bn.weight, bn.bias, bn.eps, ACTIVATIONS[act])
    with torch.no_grad():
        bn.num_batches_tracked.add_(1)
        momentum = bn.momentum if bn.momentum is not None else 1.0 / float(bn.num_batches_tracked)
        rows = x.numel() // x.shape[1]
        bn.running_mean.lerp_(mean, momentum)
        bn.running_var.lerp_(var * (rows / (rows - 1)), momentum)
    return y


def _dw_shape(x: Tensor, kernel: int, stride: int, pad_top: int, pad_left: int, out_h: int,
              out_w: int) -> list[int]:
    n, c, h, w = x.shape
    return [n, h, w, c, out_h, out_w, kernel, stride, pad_top, pad_left]


@torch.library.custom_op("effnet::depthwise_conv", mutates_args=())
def depthwise_conv(x: Tensor, weight: Tensor, stride: int, pad_top: int, pad_left: int, out_h: int,
                   out_w: int) -> Tensor:
    """Depthwise kxk conv (``weight`` [C, 1, k, k], no bias) of a channels_last float32 ``x``
    with the given top/left padding and output size (bottom/right padding is implied)."""
    check_depthwise(x, weight, stride, pad_top, pad_left, out_h, out_w)
    x = x.contiguous(memory_format=torch.channels_last)
    kernel = weight.shape[-1]
    taps = weight.detach().reshape(weight.shape[0], kernel * kernel).t().contiguous()  # [k*k, C]
    y = torch.empty((x.shape[0], x.shape[1], out_h, out_w), dtype=x.dtype, memory_format=torch.channels_last)
    _library().effnet_dw_forward(pointer(x), pointer(taps), pointer(y),
                                 *_dw_shape(x, kernel, stride, pad_top, pad_left, out_h, out_w),
                                 torch.get_num_threads())
    return y


@depthwise_conv.register_fake
def _(x: Tensor, weight: Tensor, stride: int, pad_top: int, pad_left: int, out_h: int, out_w: int) -> Tensor:
    return torch.empty((x.shape[0], x.shape[1], out_h, out_w), dtype=x.dtype, device=x.device,
                       memory_format=torch.channels_last)


@torch.library.custom_op("effnet::depthwise_conv_backward", mutates_args=())
def depthwise_conv_backward(grad: Tensor, x: Tensor, weight: Tensor, stride: int, pad_top: int, pad_left: int,
                            out_h: int, out_w: int) -> tuple[Tensor, Tensor]:
    """Gradients of :func:`depthwise_conv` with respect to x and weight, in one pass."""
    check_depthwise(x, weight, stride, pad_top, pad_left, out_h, out_w)
    check("gradient", grad, (x.shape[0], x.shape[1], out_h, out_w))
    x = x.contiguous(memory_format=torch.channels_last)
    grad = grad.contiguous(memory_format=torch.channels_last)
    channels, kernel, threads = weight.shape[0], weight.shape[-1], torch.get_num_threads()
    taps = weight.detach().reshape(channels, kernel * kernel).t().contiguous()
    dx = torch.empty_like(x)
    partial = torch.zeros(threads, kernel * kernel * channels, dtype=torch.float64)
    dtaps = torch.empty(kernel * kernel, channels, dtype=torch.float32)
    if _library().effnet_dw_backward(pointer(grad), pointer(x), pointer(taps), pointer(dx), pointer(partial), pointer(dtaps),
                                     *_dw_shape(x, kernel, stride, pad_top, pad_left, out_h, out_w), threads) != 0:
        raise MemoryError("the depthwise conv kernel could not allocate its per-thread sums")
    return dx, dtaps.t().reshape(weight.shape).contiguous()


@depthwise_conv_backward.register_fake
def _(grad: Tensor, x: Tensor, weight: Tensor, stride: int, pad_top: int, pad_left: int, out_h: int,
      out_w: int) -> tuple[Tensor, Tensor]:
    return torch.empty_like(x, memory_format=torch.channels_last), torch.empty_like(weight)


def _dw_setup_context(ctx, inputs, output) -> None:  # type: ignore[no-untyped-def]
    x, weight, *geometry = inputs
    ctx.save_for_backward(x, weight)
    ctx.geometry = geometry


def _dw_backward(ctx, grad: Tensor):  # type: ignore[no-untyped-def]
    x, weight = ctx.saved_tensors
    dx, dweight = torch.ops.effnet.depthwise_conv_backward(grad, x, weight, *ctx.geometry)
    return dx, dweight, None, None, None, None, None


depthwise_conv.register_autograd(_dw_backward, setup_context=_dw_setup_context)


def depthwise_applicable(x: Tensor, conv: nn.Conv2d) -> bool:
    """Whether :func:`depthwise` computes what ``conv`` would (a bias-free depthwise conv with
    square kernel and stride, no dilation, on a channels_last float32 CPU tensor)."""
    return (conv.groups == conv.in_channels == conv.out_channels and conv.bias is None
            and conv.dilation == (1, 1) and conv.kernel_size[0] == conv.kernel_size[1]
            and conv.stride[0] == conv.stride[1] and conv.weight.dtype == torch.float32
            and x.device.type == "cpu" and x.dtype == torch.float32 and x.dim() == 4
            and x.is_contiguous(memory_format=torch.channels_last))


def depthwise(x: Tensor, conv: nn.Conv2d, pads: tuple[int, int, int, int]) -> Tensor:
    """``conv`` applied to ``x`` padded by (left, right, top, bottom) zeros, without the
    padded copy."""
    check("x", x, 4)
    left, right, top, bottom = pads
    k, s = conv.kernel_size[0], conv.stride[0]
    out_h = (x.shape[2] + top + bottom - k) // s + 1
    out_w = (x.shape[3] + left + right - k) // s + 1
    return torch.ops.effnet.depthwise_conv(x, conv.weight, s, top, left, out_h, out_w)


class _SqueezeExcite(torch.autograd.Function):
    """``x * sigmoid(gate_logits(mean_hw(x)))`` with a backward in two passes over x.

    Native autograd runs the backward as: dy * gate (a pass), dy * x (a pass) and its sum over
    H, W (a pass), the mean's gradient expanded and divided (a pass) and added to the first
    (a pass). Here one kernel pass sums dy * x per image and channel, the tiny gate layers are
    differentiated on the [N, C] means, and ``dx = dy * gate + dmean / (H * W)`` is one
    ``addcmul`` pass.
    """

    @staticmethod
    def forward(ctx, x: Tensor, gate_logits, *params: Tensor) -> Tensor:  # type: ignore[no-untyped-def, override]
        pooled = x.mean((2, 3), keepdim=True)
        gate = torch.sigmoid(gate_logits(pooled))
        ctx.save_for_backward(x, pooled, gate, *params)
        ctx.gate_logits = gate_logits
        return x * gate

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[no-untyped-def, override]
        x, pooled, gate, *params = ctx.saved_tensors
        check("x", x, 4)
        check("gradient", grad, tuple(x.shape))
        x = x.contiguous(memory_format=torch.channels_last)
        grad = grad.contiguous(memory_format=torch.channels_last)
        n, c, h, w = x.shape
        grad_gate = torch.empty(n, c, dtype=torch.float32)
        if _library().effnet_se_gate_grad(pointer(grad), pointer(x), n, h * w, c, pointer(grad_gate),
                                          torch.get_num_threads()) != 0:
            raise MemoryError("the fused SE kernel could not allocate its sums")
        wanted = [p for p, need in zip(params, ctx.needs_input_grad[2:]) if need]
        with torch.enable_grad():
            pooled = pooled.detach().requires_grad_()
            gate_again = torch.sigmoid(ctx.gate_logits(pooled))
            grads = iter(torch.autograd.grad(gate_again, [pooled, *wanted], grad_gate.view(n, c, 1, 1)))
        grad_pooled = next(grads)
        grad_x = torch.addcmul(grad_pooled / (h * w), grad, gate) if ctx.needs_input_grad[0] else None
        return (grad_x, None, *[next(grads) if need else None for need in ctx.needs_input_grad[2:]])


def squeeze_excite_applicable(x: Tensor) -> bool:
    """Whether :func:`squeeze_excite` can run here (eager CPU float32 channels_last)."""
    return (x.device.type == "cpu" and x.dtype == torch.float32 and x.dim() == 4 and torch.is_grad_enabled()
            and x.is_contiguous(memory_format=torch.channels_last) and not torch.compiler.is_compiling())


def squeeze_excite(x: Tensor, gate_logits, params: list[Tensor]) -> Tensor:  # type: ignore[no-untyped-def]
    """``x * sigmoid(gate_logits(x.mean((2, 3), keepdim=True)))``; ``params`` are every
    parameter ``gate_logits`` uses (their gradients are returned through them)."""
    check("x", x, 4)
    return _SqueezeExcite.apply(x, gate_logits, *params)


__all__ = ["ACTIVATIONS", "applicable", "batch_norm_act", "depthwise", "depthwise_applicable", "squeeze_excite",
           "squeeze_excite_applicable"]

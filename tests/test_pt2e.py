"""effnet's PT2E int8 quantiser: a convolution and the ReLU6 after it become one int8 operation
with one range, after the clamp, so a channel whose raw output is huge (as BN folding leaves in
EfficientNet-Lite's weights) does not swallow the range of the others."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .optional import require

require("executorch")
require("torchao")
from effnet import pt2e  # noqa: E402
from effnet.deploy.executorch import _export, quantize_int8  # noqa: E402


def _saturated_net() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU6(), nn.Conv2d(8, 16, 1), nn.ReLU6(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))
    with torch.no_grad():
        net[0].bias[0] = 400.0  # always clamped to 6 by the ReLU6: harmless in fp32
    return net.eval()


def _sqnr(reference: torch.Tensor, other: torch.Tensor) -> float:
    return float(10 * torch.log10(reference.pow(2).mean() / (other - reference).pow(2).mean()))


def test_conv_and_relu6_share_one_range_after_the_clamp() -> None:
    net = _saturated_net()
    example = torch.zeros(1, 3, 8, 8)
    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e
    prepared = prepare_pt2e(_export(net, example).module(), pt2e.xnnpack_quantizer()[0])
    clamps = [n for n in prepared.graph.nodes if n.target == torch.ops.aten.hardtanh.default]
    assert len(clamps) == 2
    assert all(n.args[0].target == torch.ops.aten.conv2d.default for n in clamps)  # no observer between


def test_a_saturated_channel_leaves_int8_accurate() -> None:
    net = _saturated_net()
    images = np.random.default_rng(0).standard_normal((64, 3, 8, 8)).astype(np.float32)
    example = torch.zeros(1, 3, 8, 8)
    with torch.no_grad():
        reference = net(torch.from_numpy(images[32:]))
        ours = quantize_int8(net, example, images[:32])(torch.from_numpy(images[32:]))
    # XNNPACK's own quantiser alone observes the raw conv output (range 0..400): the 0..6 of the
    # seven live channels gets ~2 of 255 steps.
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (XNNPACKQuantizer,
                                                                         get_symmetric_quantization_config)
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    plain = prepare_pt2e(_export(net, example).module(),
                         XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True)))
    with torch.no_grad():
        plain(torch.from_numpy(images[:32]))
        theirs = convert_pt2e(plain)(torch.from_numpy(images[32:]))
    assert _sqnr(reference, ours) > 35  # measured 43 dB; XNNPACK alone 25 dB
    assert _sqnr(reference, theirs) < _sqnr(reference, ours) - 10


def _dequantised(node: torch.fx.Node) -> bool:
    return isinstance(node, torch.fx.Node) and "dequantize" in str(node.target)


def test_named_groups_stay_fp32() -> None:
    from effnet.deploy.export import example_input, prepare

    from .test_export import _model
    module = prepare(_model("fmnist_lab"), 16, dynamic=False)
    example = example_input(module, 16)
    images = np.random.default_rng(0).standard_normal((8, *example.shape[1:])).astype(np.float32)
    graph = quantize_int8(module, example, images, keep_fp32=("stem", "classifier")).graph

    def ops(target: object, group: str) -> list[torch.fx.Node]:
        return [n for n in graph.nodes if n.target == target
                and any(name.split(".")[0] == group for name, _ in n.meta.get("nn_module_stack", {}).values())]

    conv, linear = torch.ops.aten.conv2d.default, torch.ops.aten.linear.default
    assert ops(conv, "stem") and not any(_dequantised(a) for n in ops(conv, "stem") for a in n.args[:2])
    # the classifier's weights stay fp32 (its input is the pooled int8 activation, dequantised)
    assert ops(linear, "classifier") and not any(_dequantised(n.args[1]) for n in ops(linear, "classifier"))
    assert all(_dequantised(n.args[1]) for n in ops(conv, "stages"))  # int8 weights elsewhere

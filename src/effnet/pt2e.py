"""XNNPACK's int8 quantiser for PyTorch 2 export quantisation (PT2E), in one place for the
post-training path (``deploy.executorch``) and quantisation-aware training (``train.qat``):
both must place the same quantise/dequantise pairs for their int8 programs to agree.

XNNPACK's quantiser fuses a convolution with a following ReLU (one observer, after the ReLU)
but not with ReLU6 (``hardtanh(0, 6)``, EfficientNet-Lite's activation): there it observes the
convolution's raw output, whose per-tensor range, after BatchNorm is folded into the weights,
can reach hundreds where the ReLU6 output spans 0..6, leaving the useful range a handful of
int8 steps (official Lite0: 36.5% top-1 agreement with fp32 on photo crops). ``ClampFusion``
annotates convolution + ReLU6 the way XNNPACK's quantiser annotates convolution + ReLU, before
that quantiser sees the graph; the XNNPACK lowering fuses the clamp into the int8 convolution.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import torch


def _outside(fp32_modules: Sequence[str]) -> Callable[[torch.fx.Node], bool]:
    """True for a node that belongs to no module whose qualified name matches one of the
    ``fp32_modules`` patterns (the modules a node comes from are in its ``nn_module_stack``)."""
    patterns = [re.compile(p) for p in fp32_modules]

    def outside(node: torch.fx.Node) -> bool:
        names = [name for name, _ in node.meta.get("nn_module_stack", {}).values()]
        return not any(p.search(name) for p in patterns for name in names)

    return outside


def _clamp_fusion(config: Any, quantised: Callable[[torch.fx.Node], bool]) -> Any:
    """A PT2E quantiser that annotates ``conv2d -> hardtanh`` (the conv's only user) as one
    int8 operation: int8 input and weights, int32 bias, one output observer after the clamp."""
    from torchao.quantization.pt2e.quantizer import (QuantizationAnnotation, Quantizer, get_bias_qspec,
                                                     get_input_act_qspec, get_output_act_qspec, get_weight_qspec)
    from torchao.quantization.pt2e.quantizer.quantizer import Q_ANNOTATION_KEY

    clamps = (torch.ops.aten.hardtanh.default, torch.ops.aten.hardtanh_.default)
    convs = (torch.ops.aten.conv2d.default, torch.ops.aten.conv1d.default)

    class ClampFusion(Quantizer):
        def annotate(self, model: torch.fx.GraphModule) -> torch.fx.GraphModule:
            for clamp in model.graph.nodes:
                conv = clamp.args[0] if clamp.op == "call_function" and clamp.target in clamps else None
                if not isinstance(conv, torch.fx.Node) or conv.target not in convs or len(conv.users) > 1:
                    continue
                if any(Q_ANNOTATION_KEY in n.meta for n in (clamp, conv)) or not quantised(conv):
                    continue
                inputs = {conv.args[0]: get_input_act_qspec(config), conv.args[1]: get_weight_qspec(config)}
                if len(conv.args) > 2 and isinstance(conv.args[2], torch.fx.Node):
                    inputs[conv.args[2]] = get_bias_qspec(config)
                conv.meta[Q_ANNOTATION_KEY] = QuantizationAnnotation(input_qspec_map=inputs, _annotated=True)
                clamp.meta[Q_ANNOTATION_KEY] = QuantizationAnnotation(output_qspec=get_output_act_qspec(config),
                                                                       _annotated=True)
            return model

        def validate(self, model: torch.fx.GraphModule) -> None:
            pass

    return ClampFusion()


def xnnpack_quantizer(*, per_channel: bool = True, qat: bool = False,
                      fp32_modules: Sequence[str] = ()) -> tuple[Any, str]:
    """XNNPACK's symmetric int8 quantiser (int8 activations per tensor, int8 weights per output
    channel, or per tensor) from ExecuTorch, or torchao's own copy where ExecuTorch is not
    installed, preceded by ``ClampFusion``; and which package gave it. ``qat``: fake
    quantisation for training. ``fp32_modules``: regular expressions of module names (``stem``,
    ``stages.3.1.se``) whose operations stay in fp32."""
    try:
        from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
            XNNPACKQuantizer, get_symmetric_quantization_config)
        source = "executorch"
    except ModuleNotFoundError as error:
        if not (error.name or "").startswith("executorch"):
            raise
        from torchao.testing.pt2e._xnnpack_quantizer import XNNPACKQuantizer, get_symmetric_quantization_config
        source = "torchao"
    from torchao.quantization.pt2e.quantizer import ComposableQuantizer
    config = get_symmetric_quantization_config(is_per_channel=per_channel, is_qat=qat)
    quantised = _outside(fp32_modules)
    xnnpack = XNNPACKQuantizer().set_global(config)
    if fp32_modules:
        if not hasattr(xnnpack, "set_filter_function"):  # torchao's copy has none
            raise ImportError("keeping layers in fp32 needs ExecuTorch's quantiser: pip install 'effnet[executorch]'")
        xnnpack.set_filter_function(quantised)
    return ComposableQuantizer([_clamp_fusion(config, quantised), xnnpack]), source

"""XNNPACK's int8 quantiser for PyTorch 2 export quantisation (PT2E), in one place for the
post-training path (``deploy.executorch``) and quantisation-aware training (``train.qat``):
both must place the same quantise/dequantise pairs for their int8 programs to agree."""

from __future__ import annotations

from typing import Any


def xnnpack_quantizer(*, per_channel: bool = True, qat: bool = False) -> tuple[Any, str]:
    """XNNPACK's symmetric int8 quantiser (int8 activations per tensor, int8 weights per output
    channel, or per tensor) from ExecuTorch, or torchao's own copy where ExecuTorch is not
    installed; and which package gave it. ``qat``: fake quantisation for training."""
    try:
        from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
            XNNPACKQuantizer, get_symmetric_quantization_config)
        source = "executorch"
    except ModuleNotFoundError as error:
        if not (error.name or "").startswith("executorch"):
            raise
        from torchao.testing.pt2e._xnnpack_quantizer import XNNPACKQuantizer, get_symmetric_quantization_config
        source = "torchao"
    config = get_symmetric_quantization_config(is_per_channel=per_channel, is_qat=qat)
    return XNNPACKQuantizer().set_global(config), source

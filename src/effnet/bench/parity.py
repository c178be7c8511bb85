"""Logit parity with the peers (timm, torchvision): a peer with random weights, converted and
saved, then loaded by ``create_model`` alone, must give the same logits. The cases are shared
by tests/test_parity.py and benchmarks/parity_table.py (the table of docs/weights.md)."""

from __future__ import annotations

import gc
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..factory import create_model
from ..weights import WeightsMeta, convert_state_dict, peer_weights, save_weights
from ..zoo import get_spec
from .peer_models import peer_model


@dataclass(frozen=True)
class PeerCase:
    layout: str        # "timm" or "torchvision"
    model: str         # the peer's model name
    size: int          # input size: small for the big models (time and memory)
    # More (H, W) inputs to compare at: even and odd, non-square (odd sides hide the SAME bug).
    extra_sizes: tuple[tuple[int, int], ...] = ()

    @property
    def id(self) -> str:
        return f"{self.layout}-{self.model}"


def _timm(layout: str, names: list[str], size: int) -> list[PeerCase]:
    return [PeerCase(layout, name, size) for name in names]


# Sizes are even at every stride-2 layer, where TF SAME and symmetric padding differ.
CASES = (
    _timm("timm", [f"tf_efficientnet_b{i}" for i in range(4)], 128)
    + _timm("timm", [f"tf_efficientnet_b{i}" for i in range(4, 8)], 96)
    + _timm("timm", ["tf_efficientnet_b8", "tf_efficientnet_l2"], 64)
    + _timm("timm", [f"tf_efficientnet_lite{i}" for i in range(5)], 128)
    + _timm("timm", ["efficientnet_b0"], 128)
    + _timm("torchvision", [f"efficientnet_b{i}" for i in range(4)], 128)
    + _timm("torchvision", [f"efficientnet_b{i}" for i in range(4, 8)], 96)
)
# EfficientNetV2: 15 peer models (timm's tf_ and own variants, torchvision's), each at an even and an odd non-square size.
V2_SIZES = ((64, 96), (65, 97))
V2_CASES = tuple(
    PeerCase(layout, model, 64, V2_SIZES)
    for layout, model in [("timm", f"tf_efficientnetv2_{v}") for v in ("b0", "b1", "b2", "b3", "s", "m", "l", "xl")]
    + [("timm", f"efficientnetv2_{v}") for v in ("s", "m", "l", "xl")]
    + [("torchvision", f"efficientnet_v2_{v}") for v in ("s", "m", "l")]
)
CASES = [*CASES, *V2_CASES]
HEAVY = {"tf_efficientnet_b6", "tf_efficientnet_b7", "tf_efficientnet_b8", "tf_efficientnet_l2",
         "efficientnet_b6", "efficientnet_b7", "tf_efficientnetv2_l", "tf_efficientnetv2_xl", "efficientnetv2_l",
         "efficientnetv2_xl", "efficientnet_v2_l"}


def build_peer(case: PeerCase) -> nn.Module:
    return peer_model(f"{case.layout}:{case.model}")


@torch.no_grad()
def randomise(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights *and* BN statistics: default BN (mean 0, var 1) would hide a swapped
    or missing BN tensor. Kept near identity so that a deep random net stays finite."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            n = module.num_features
            module.weight.copy_(torch.rand(n, generator=generator) * 0.5 + 0.75)
            module.bias.copy_(torch.randn(n, generator=generator) * 0.1)
            module.running_mean.copy_(torch.randn(n, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(n, generator=generator) * 0.5 + 0.75)
            module.num_batches_tracked.fill_(int(torch.randint(1, 1000, (1,), generator=generator)))
        elif isinstance(module, (nn.Conv2d, nn.Linear)) and module.bias is not None:
            module.bias.copy_(torch.randn(module.bias.shape, generator=generator) * 0.1)
    return model


@dataclass(frozen=True)
class ParityResult:
    case: PeerCase
    architecture: str
    max_abs_diff: float
    max_abs_logit: float


@torch.no_grad()
def run_parity(case: PeerCase, directory: Path | None = None, batch: int = 2) -> ParityResult:
    """Peer with random weights -> convert -> .safetensors -> create_model(name, weights=file)
    alone -> compare logits."""
    torch.manual_seed(0)
    peer = randomise(build_peer(case)).eval()
    generator = torch.Generator().manual_seed(1)
    inputs = [torch.randn(batch, 3, h, w, generator=generator)
              for h, w in ((case.size, case.size), *case.extra_sizes)]
    expected = [peer(x) for x in inputs]
    settings = peer_weights(case.layout, case.model)
    spec = get_spec(settings.architecture).replace(padding=settings.padding, bn_eps=settings.bn_eps)
    state_dict = convert_state_dict(peer.state_dict(), spec, case.layout)
    meta = WeightsMeta(architecture=settings.architecture, padding=settings.padding, bn_eps=settings.bn_eps,
                       preprocessing=settings.preprocessing, num_classes=1000, spec=spec,
                       source=f"random {case.layout} {case.model} (parity test)")
    del peer
    gc.collect()
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        path = save_weights(Path(tmp) / f"{case.model}.safetensors", state_dict, meta)
        del state_dict
        gc.collect()
        ours = create_model(settings.architecture, weights=str(path)).eval()
    diffs = [float((ours(x) - want).abs().max()) for x, want in zip(inputs, expected)]
    return ParityResult(case, settings.architecture, max(diffs), min(float(want.abs().max()) for want in expected))

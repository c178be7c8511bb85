"""The peers' models (timm, torchvision) that benchmarks and parity checks compare against,
built in one place. timm and torchvision are imported only when a peer is asked for; the
rest of the library never imports them."""

from __future__ import annotations

from functools import partial

from torch import nn

from ..spec import NetworkSpec


def peer_model(peer: str, *, drop_path_rate: float | None = None) -> nn.Module:
    """A peer's model with random weights: ``timm:NAME`` or ``torchvision:NAME``.
    ``drop_path_rate`` is timm's stochastic depth (torchvision builds its own 0.2 in)."""
    library, _, name = peer.partition(":")
    try:
        if library == "timm":
            import timm

            extra = {} if drop_path_rate is None else {"drop_path_rate": drop_path_rate}
            return timm.create_model(name, pretrained=False, **extra)
        if library == "torchvision":
            import torchvision

            return getattr(torchvision.models, name)(weights=None)
    except ImportError as error:
        raise ImportError(f"the {library} peer needs {library} installed (`pip install {library}`), or leave it "
                          "out with --peers") from error
    raise ValueError(f"unknown peer {peer!r}; peers look like 'timm:tf_efficientnet_b0' or 'torchvision:efficientnet_b0'")


def timm_same_architecture(spec: NetworkSpec) -> nn.Module:
    """timm's EfficientNet class with ``spec``'s stages, stem, head and settings (random
    weights): the peer for a network timm has no name for, such as the Fashion-MNIST ones."""
    from timm.models._efficientnet_builder import decode_arch_def
    from timm.models.efficientnet import EfficientNet

    arch = []
    for stage in spec.stages:
        if stage.kind != "mbconv":
            raise ValueError(f"no timm block for stage kind {stage.kind}")
        # timm's "ds" block is MBConv without the expansion conv, as in the official B0 stage 1.
        kind = "ds" if stage.expand_ratio == 1 else "ir"
        text = f"{kind}_r{stage.repeats}_k{stage.kernel}_s{stage.stride}"
        text += f"_e{stage.expand_ratio:g}" if kind == "ir" else ""
        text += f"_c{stage.out_channels}" + (f"_se{stage.se_ratio:g}" if stage.se_ratio else "")
        arch.append([text])
    model = EfficientNet(
        decode_arch_def(arch), num_classes=spec.num_classes, num_features=spec.head.channels,
        in_chans=spec.in_chans, stem_size=spec.stem.channels, fix_stem=True, act_layer=nn.SiLU,
        norm_layer=partial(nn.BatchNorm2d, eps=spec.bn_eps, momentum=spec.bn_momentum),
        round_chs_fn=lambda c: c, drop_rate=spec.dropout, drop_path_rate=spec.drop_path_rate)
    # timm fixes the stem's stride at 2; ours follows the spec (1 for 28 px images).
    old = model.conv_stem
    model.conv_stem = nn.Conv2d(old.in_channels, old.out_channels, old.kernel_size, stride=spec.stem.stride,
                                padding=old.kernel_size[0] // 2, bias=False)
    return model


__all__ = ["peer_model", "timm_same_architecture"]

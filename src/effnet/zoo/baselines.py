"""The baselines of the paper's Table 3, written in the same spec language so that the
compound scaler can scale them: MobileNetV1, MobileNetV2 and ResNet-50.

Their layouts follow the canonical PyTorch models (torchvision ``mobilenet_v2`` and
``resnet50``, ResNet v1.5 with the stride on the 3x3 conv) and MobileNetV1 1.0-224 of
Howard et al. 2017; BN settings are PyTorch defaults and padding is symmetric.
"""

from __future__ import annotations

from ..blockstring import parse_stages
from ..spec import HeadSpec, NetworkSpec, StemSpec

_TORCH_BN = {"bn_eps": 1e-5, "bn_momentum": 0.1, "padding": "symmetric"}


def mobilenet_v1() -> NetworkSpec:
    """MobileNetV1 1.0-224: 13 depthwise-separable layers, 4.2M params, 569M MAdds."""
    return NetworkSpec(
        name="mobilenet_v1",
        stem=StemSpec(channels=32, kernel=3, stride=2),
        stages=parse_stages((
            "ds_r1_k3_s11_e1_i32_o64_noskip",
            "ds_r2_k3_s22_e1_i64_o128_noskip",
            "ds_r2_k3_s22_e1_i128_o256_noskip",
            "ds_r6_k3_s22_e1_i256_o512_noskip",
            "ds_r2_k3_s22_e1_i512_o1024_noskip",
        )),
        head=HeadSpec(channels=0),
        activation="relu",
        dropout=0.0,
        drop_path_rate=0.0,
        **_TORCH_BN,  # type: ignore[arg-type]
    )


def mobilenet_v2() -> NetworkSpec:
    """MobileNetV2 1.0-224 (torchvision ``mobilenet_v2``: 3,504,872 params)."""
    return NetworkSpec(
        name="mobilenet_v2",
        stem=StemSpec(channels=32, kernel=3, stride=2),
        stages=parse_stages((
            "r1_k3_s11_e1_i32_o16",
            "r2_k3_s22_e6_i16_o24",
            "r3_k3_s22_e6_i24_o32",
            "r4_k3_s22_e6_i32_o64",
            "r3_k3_s11_e6_i64_o96",
            "r3_k3_s22_e6_i96_o160",
            "r1_k3_s11_e6_i160_o320",
        )),
        head=HeadSpec(channels=1280),
        activation="relu6",
        dropout=0.2,
        drop_path_rate=0.0,
        **_TORCH_BN,  # type: ignore[arg-type]
    )


def resnet50() -> NetworkSpec:
    """ResNet-50 v1.5 (torchvision ``resnet50``: 25,557,032 params)."""
    return NetworkSpec(
        name="resnet50",
        stem=StemSpec(channels=64, kernel=7, stride=2, pool=True),
        stages=parse_stages((
            "bottleneck_r3_k3_s11_e0.25_i64_o256",
            "bottleneck_r4_k3_s22_e0.25_i256_o512",
            "bottleneck_r6_k3_s22_e0.25_i512_o1024",
            "bottleneck_r3_k3_s22_e0.25_i1024_o2048",
        )),
        head=HeadSpec(channels=0),
        activation="relu",
        dropout=0.0,
        drop_path_rate=0.0,
        **_TORCH_BN,  # type: ignore[arg-type]
    )

"""The EfficientNet family as data: the B0 baseline of the paper's Table 1 and the official
scaling table for B1..B8, L2 and Lite0..4 (tensorflow/tpu ``efficientnet_builder`` and
``efficientnet_lite_builder``)."""

from __future__ import annotations

from dataclasses import replace

from ..blockstring import parse_stages
from ..scaling import scale
from ..spec import HeadSpec, NetworkSpec, ScalingPolicy, StemSpec

# Paper Table 1 in the official block-string format.
B0_BLOCKS = (
    "r1_k3_s11_e1_i32_o16_se0.25",
    "r2_k3_s22_e6_i16_o24_se0.25",
    "r2_k5_s22_e6_i24_o40_se0.25",
    "r3_k3_s22_e6_i40_o80_se0.25",
    "r3_k5_s11_e6_i80_o112_se0.25",
    "r4_k5_s22_e6_i112_o192_se0.25",
    "r1_k3_s11_e6_i192_o320_se0.25",
)

# name: (width, depth, resolution, dropout), official efficientnet_params().
EFFICIENTNET_PARAMS: dict[str, tuple[float, float, int, float]] = {
    "efficientnet_b0": (1.0, 1.0, 224, 0.2),
    "efficientnet_b1": (1.0, 1.1, 240, 0.2),
    "efficientnet_b2": (1.1, 1.2, 260, 0.3),
    "efficientnet_b3": (1.2, 1.4, 300, 0.3),
    "efficientnet_b4": (1.4, 1.8, 380, 0.4),
    "efficientnet_b5": (1.6, 2.2, 456, 0.4),
    "efficientnet_b6": (1.8, 2.6, 528, 0.5),
    "efficientnet_b7": (2.0, 3.1, 600, 0.5),
    "efficientnet_b8": (2.2, 3.6, 672, 0.5),
    "efficientnet_l2": (4.3, 5.3, 800, 0.5),
}

# Official efficientnet_lite_params().
LITE_PARAMS: dict[str, tuple[float, float, int, float]] = {
    "efficientnet_lite0": (1.0, 1.0, 224, 0.2),
    "efficientnet_lite1": (1.0, 1.1, 240, 0.2),
    "efficientnet_lite2": (1.1, 1.2, 260, 0.3),
    "efficientnet_lite3": (1.2, 1.4, 280, 0.3),
    "efficientnet_lite4": (1.4, 1.8, 300, 0.3),
}


def efficientnet_b0_base() -> NetworkSpec:
    """The B0 baseline found by the search (paper section 4, Table 1)."""
    return NetworkSpec(
        name="efficientnet_b0",
        stem=StemSpec(channels=32, kernel=3, stride=2),
        stages=parse_stages(B0_BLOCKS),
        head=HeadSpec(channels=1280),
        activation="silu",
        bn_eps=1e-3,
        bn_momentum=0.01,
        padding="same",
        resolution=224,
        dropout=0.2,
        drop_path_rate=0.2,
    )


def efficientnet_lite_base() -> NetworkSpec:
    """Lite: B0's blocks without SE, ReLU6, stem/head and first/last repeats fixed."""
    b0 = efficientnet_b0_base()
    return replace(
        b0,
        name="efficientnet_lite0",
        stages=tuple(replace(s, se_ratio=0.0) for s in b0.stages),
        activation="relu6",
        scaling_policy=ScalingPolicy(fixed_stem=True, fixed_head=True, fixed_depth_stages=(0, -1)),
    )


def efficientnet(name: str) -> NetworkSpec:
    """A named member of the family, scaled from its baseline by the official table."""
    if name in EFFICIENTNET_PARAMS:
        base = efficientnet_b0_base()
        width, depth, resolution, dropout = EFFICIENTNET_PARAMS[name]
    else:
        base = efficientnet_lite_base()
        width, depth, resolution, dropout = LITE_PARAMS[name]
    return scale(base, width, depth, resolution, name=name, dropout=dropout)

"""EfficientNetV2 (Tan & Le, ICML 2021) as data: the official block strings of google/automl
``effnetv2_configs.py``, verbatim in its dialect (``c1`` = Fused-MBConv, one-digit strides),
and its per-variant settings (``efficientnetv2_params``).

S, M, L and XL are separate hand-written networks (width = depth = 1); B0..B3 scale the
``v2_base`` strings with V2's rounding: ``round_filters`` without V1's 0.9 step
(``ScalingPolicy(round_limit=0)``), stem and head scaled by width, repeats by ceil. BN eps
is 1e-3 and BN momentum TF's 0.9 (PyTorch 0.1) as in the official hparams; TF "SAME"
padding is the default, as the official code pads.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..blockstring import parse_stages
from ..scaling import scale
from ..spec import HeadSpec, NetworkSpec, ScalingPolicy, StemSpec

V2_BLOCKS: dict[str, tuple[str, ...]] = {
    "base": ("r1_k3_s1_e1_i32_o16_c1", "r2_k3_s2_e4_i16_o32_c1", "r2_k3_s2_e4_i32_o48_c1",
             "r3_k3_s2_e4_i48_o96_se0.25", "r5_k3_s1_e6_i96_o112_se0.25", "r8_k3_s2_e6_i112_o192_se0.25"),
    "s": ("r2_k3_s1_e1_i24_o24_c1", "r4_k3_s2_e4_i24_o48_c1", "r4_k3_s2_e4_i48_o64_c1",
          "r6_k3_s2_e4_i64_o128_se0.25", "r9_k3_s1_e6_i128_o160_se0.25", "r15_k3_s2_e6_i160_o256_se0.25"),
    "m": ("r3_k3_s1_e1_i24_o24_c1", "r5_k3_s2_e4_i24_o48_c1", "r5_k3_s2_e4_i48_o80_c1",
          "r7_k3_s2_e4_i80_o160_se0.25", "r14_k3_s1_e6_i160_o176_se0.25", "r18_k3_s2_e6_i176_o304_se0.25",
          "r5_k3_s1_e6_i304_o512_se0.25"),
    "l": ("r4_k3_s1_e1_i32_o32_c1", "r7_k3_s2_e4_i32_o64_c1", "r7_k3_s2_e4_i64_o96_c1",
          "r10_k3_s2_e4_i96_o192_se0.25", "r19_k3_s1_e6_i192_o224_se0.25", "r25_k3_s2_e6_i224_o384_se0.25",
          "r7_k3_s1_e6_i384_o640_se0.25"),
    "xl": ("r4_k3_s1_e1_i32_o32_c1", "r8_k3_s2_e4_i32_o64_c1", "r8_k3_s2_e4_i64_o96_c1",
           "r16_k3_s2_e4_i96_o192_se0.25", "r24_k3_s1_e6_i192_o256_se0.25", "r32_k3_s2_e6_i256_o512_se0.25",
           "r8_k3_s1_e6_i512_o640_se0.25"),
}


@dataclass(frozen=True)
class V2Params:
    """One row of the official ``efficientnetv2_params`` (plus the progressive-learning
    regularisation the official configs train with)."""

    blocks: str
    width: float
    depth: float
    train_size: int
    eval_size: int
    dropout: float
    randaug_magnitude: float   # the last stage's; 0 for B0..B3 (they train with AutoAugment)
    mix_alpha: float           # mixup = cutmix alpha of the last stage


V2_PARAMS: dict[str, V2Params] = {
    "efficientnetv2_b0": V2Params("base", 1.0, 1.0, 192, 224, 0.2, 0, 0),
    "efficientnetv2_b1": V2Params("base", 1.0, 1.1, 192, 240, 0.2, 0, 0),
    "efficientnetv2_b2": V2Params("base", 1.1, 1.2, 208, 260, 0.3, 0, 0),
    "efficientnetv2_b3": V2Params("base", 1.2, 1.4, 240, 300, 0.3, 0, 0),
    "efficientnetv2_s": V2Params("s", 1.0, 1.0, 300, 384, 0.2, 10, 0),
    "efficientnetv2_m": V2Params("m", 1.0, 1.0, 384, 480, 0.3, 15, 0.2),
    "efficientnetv2_l": V2Params("l", 1.0, 1.0, 384, 480, 0.4, 20, 0.5),
    "efficientnetv2_xl": V2Params("xl", 1.0, 1.0, 384, 512, 0.4, 20, 0.5),
}

# Official hparams: survival_prob 0.8 for every variant (drop path 0.2), BN momentum 0.9 (TF).
DROP_PATH_RATE = 0.2
BN_MOMENTUM = 0.1


def efficientnetv2(name: str) -> NetworkSpec:
    """A registered EfficientNetV2: its official block strings, scaled for B1..B3."""
    p = V2_PARAMS[name]
    stages = parse_stages(V2_BLOCKS[p.blocks])
    base = NetworkSpec(
        name=name, stem=StemSpec(channels=stages[0].in_channels, kernel=3, stride=2), stages=stages,
        head=HeadSpec(channels=1280), activation="silu", bn_eps=1e-3, bn_momentum=BN_MOMENTUM, padding="same",
        resolution=p.eval_size, dropout=p.dropout, drop_path_rate=DROP_PATH_RATE,
        scaling_policy=ScalingPolicy(round_limit=0.0),
    )
    if p.width == 1.0 and p.depth == 1.0:
        return base
    return scale(base, p.width, p.depth, name=name)


__all__ = ["BN_MOMENTUM", "DROP_PATH_RATE", "V2Params", "V2_BLOCKS", "V2_PARAMS", "efficientnetv2"]

"""What a peer's model name says about its weights: which of our networks it is, and the
padding, BN epsilon and preprocessing it was trained with.

Read from the peers' code (timm 1.0, torchvision 0.2x) once, so that converted files carry
them and nobody has to remember them:

- timm ``tf_efficientnet_*``: ports of the TF checkpoints, TF "SAME" padding, BN eps 1e-3.
- timm ``efficientnet_*``: trained in PyTorch, symmetric padding, BN eps 1e-5.
- torchvision ``efficientnet_b0..b7``: symmetric padding; BN eps 1e-5 for B0-B4, 1e-3 for
  B5-B7 (those are ports of the TF checkpoints); eval crop and resize per its weights enums.
- lukemelas ``efficientnet-bN`` / ``efficientnet-liteN``: TF ports, static SAME padding,
  BN eps 1e-3.
- EfficientNetV2 (shared/reference/efficientnetv2.md sections 1.6 and 3.4): timm
  ``tf_efficientnetv2_*`` are TF ports (SAME, eps 1e-3); timm ``efficientnetv2_s/m/l/xl`` are
  PyTorch-native (symmetric, eps 1e-5); torchvision ``efficientnet_v2_s/m/l`` are symmetric
  with eps 1e-3. Eval settings are timm's pretrained configs and torchvision's weights enums.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..preprocessing import LITE_MEAN, LITE_STD, Preprocessing
from ..zoo import get_spec, list_models
from .errors import WeightsError
from .layouts import FOREIGN_LAYOUTS

# torchvision EfficientNet_BN_Weights.IMAGENET1K_V1 eval transforms: (crop, resize), bicubic.
TORCHVISION_EVAL = {
    "efficientnet_b0": (224, 256), "efficientnet_b1": (240, 256), "efficientnet_b2": (288, 288),
    "efficientnet_b3": (300, 320), "efficientnet_b4": (380, 384), "efficientnet_b5": (456, 456),
    "efficientnet_b6": (528, 528), "efficientnet_b7": (600, 600),
}
TORCHVISION_TF_PORTS = ("efficientnet_b5", "efficientnet_b6", "efficientnet_b7")

IMAGENET = (Preprocessing().mean, Preprocessing().std)
HALF = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
# timm's EfficientNetV2 eval configs: (test size, crop fraction, mean/std). timm evaluates M, L
# and XL by squashing the whole image to a square; effnet's eval crops the centre, which is
# the same as crop 1.0 for square photos.
TIMM_V2_EVAL = {
    "efficientnetv2_b0": (224, 0.875, IMAGENET), "efficientnetv2_b1": (240, 0.882, IMAGENET),
    "efficientnetv2_b2": (260, 0.890, IMAGENET), "efficientnetv2_b3": (300, 0.904, IMAGENET),
    "efficientnetv2_s": (384, 1.0, HALF), "efficientnetv2_m": (480, 1.0, HALF),
    "efficientnetv2_l": (480, 1.0, HALF), "efficientnetv2_xl": (512, 1.0, HALF),
}
# torchvision EfficientNet_V2_*_Weights.IMAGENET1K_V1: (crop, resize, interpolation, mean/std).
TORCHVISION_V2_EVAL = {
    "efficientnetv2_s": (384, 384, "bilinear", IMAGENET), "efficientnetv2_m": (480, 480, "bilinear", IMAGENET),
    "efficientnetv2_l": (480, 480, "bicubic", HALF),
}


@dataclass(frozen=True)
class PeerWeights:
    architecture: str
    padding: str
    bn_eps: float
    preprocessing: Preprocessing


def peer_weights(layout: str, model: str) -> PeerWeights:
    """Our architecture and the training settings of a peer model, from its name."""
    if layout not in FOREIGN_LAYOUTS:
        raise WeightsError(f"unknown source {layout!r}; choose one of {', '.join(FOREIGN_LAYOUTS)}")
    name = model.replace("-", "_")
    tf_port = layout == "lukemelas" or name.startswith("tf_")
    architecture = name.removeprefix("tf_").replace("efficientnet_v2_", "efficientnetv2_")
    if architecture.startswith("efficientnetv2_") and layout != "lukemelas":
        return _v2(layout, architecture, tf_port, model)
    if architecture not in list_models("efficientnet_*"):
        raise WeightsError(f"{model!r} is not a {layout} EfficientNet effnet knows; "
                           f"expected e.g. {_example(layout)}")
    resolution = get_spec(architecture).resolution
    lite = "lite" in architecture
    mean, std = (LITE_MEAN, LITE_STD) if lite else (Preprocessing().mean, Preprocessing().std)
    if layout == "torchvision":
        if architecture not in TORCHVISION_EVAL:
            raise WeightsError(f"torchvision has no {model!r}; it has {', '.join(TORCHVISION_EVAL)}")
        crop, resize = TORCHVISION_EVAL[architecture]
        eps = 1e-3 if architecture in TORCHVISION_TF_PORTS else 1e-5
        return PeerWeights(architecture, "symmetric", eps, Preprocessing(crop, crop / resize, "bicubic"))
    if tf_port:
        return PeerWeights(architecture, "same", 1e-3, Preprocessing.tf_efficientnet(resolution, mean, std))
    return PeerWeights(architecture, "symmetric", 1e-5, Preprocessing.tf_efficientnet(resolution, mean, std))


def _v2(layout: str, architecture: str, tf_port: bool, model: str) -> PeerWeights:
    if architecture not in list_models("efficientnetv2_*"):
        raise WeightsError(f"{model!r} is not a {layout} EfficientNetV2 effnet knows; expected e.g. {_example(layout)}")
    if layout == "torchvision":
        if architecture not in TORCHVISION_V2_EVAL:
            raise WeightsError(f"torchvision has no {model!r}; it has efficientnet_v2_s, _m and _l")
        crop, resize, interpolation, (mean, std) = TORCHVISION_V2_EVAL[architecture]
        return PeerWeights(architecture, "symmetric", 1e-3, Preprocessing(crop, crop / resize, interpolation, mean, std))
    if not tf_port and architecture not in ("efficientnetv2_s", "efficientnetv2_m", "efficientnetv2_l",
                                            "efficientnetv2_xl"):
        raise WeightsError(f"timm's native EfficientNetV2 is efficientnetv2_s/m/l/xl; for {model!r} use "
                           f"tf_{model.replace('-', '_')}")
    size, crop, (mean, std) = TIMM_V2_EVAL[architecture]
    preprocessing = Preprocessing(size, crop, "bicubic", mean, std)
    return PeerWeights(architecture, "same" if tf_port else "symmetric", 1e-3 if tf_port else 1e-5, preprocessing)


def _example(layout: str) -> str:
    return {"timm": "tf_efficientnet_b0, tf_efficientnet_lite0, efficientnet_b0, tf_efficientnetv2_s, efficientnetv2_s",
            "torchvision": "efficientnet_b0 .. efficientnet_b7, efficientnet_v2_s .. efficientnet_v2_l",
            "lukemelas": "efficientnet-b0, efficientnet-lite0"}[layout]

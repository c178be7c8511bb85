"""Transforms built with torchvision from :class:`~effnet.preprocessing.Preprocessing`.

torchvision is used for its transforms only, never for its models."""

from __future__ import annotations

import math

from torchvision.transforms import v2 as T
from torchvision.transforms import InterpolationMode
import torch

from ..preprocessing import Preprocessing

_MODES = {"bicubic": InterpolationMode.BICUBIC, "bilinear": InterpolationMode.BILINEAR,
          "nearest": InterpolationMode.NEAREST}


def interpolation_mode(name: str) -> InterpolationMode:
    return _MODES[name]


def eval_transform(pre: Preprocessing) -> T.Compose:
    """PIL image (or uint8 tensor) -> normalised float tensor, as the weights were evaluated."""
    resize = int(math.floor(pre.input_size / pre.crop_fraction))
    return T.Compose([
        T.ToImage(),
        T.Resize(resize, interpolation=_MODES[pre.interpolation], antialias=True),
        T.CenterCrop(pre.input_size),
        T.ToDtype(torch.float32, scale=True),
        T.Normalize(pre.mean, pre.std),
    ])


def default_preprocessing(resolution: int) -> Preprocessing:
    """What a model without weights metadata gets: the official TF eval crop at its size."""
    return Preprocessing.tf_efficientnet(resolution)


def transforms_for(model: torch.nn.Module) -> T.Compose:
    """The eval transform that matches a model's weights (from their metadata), or the
    official TF eval preprocessing at the model's native resolution."""
    pre = getattr(model, "preprocessing", None)
    if pre is None:
        spec = getattr(model, "spec", None)
        pre = default_preprocessing(spec.resolution if spec is not None else 224)
    return eval_transform(pre)

"""Transforms built with torchvision from :class:`~effnet.preprocessing.Preprocessing`.

torchvision is used for its transforms only, never for its models."""

from __future__ import annotations

import math
from dataclasses import replace

from torchvision.transforms import v2 as T
from torchvision.transforms import InterpolationMode
import torch
from PIL import Image

from ..preprocessing import Preprocessing
from .images import limit_aspect

_MODES = {"bicubic": InterpolationMode.BICUBIC, "bilinear": InterpolationMode.BILINEAR,
          "nearest": InterpolationMode.NEAREST}


def interpolation_mode(name: str) -> InterpolationMode:
    return _MODES[name]


def eval_transform(pre: Preprocessing) -> T.Compose:
    """PIL image (or uint8 tensor) -> normalised float tensor, as the weights were evaluated.
    One mean per channel: with a single one (a grey model, Fashion-MNIST) colour images are
    turned grey first (ITU-R 601 luma, as PIL's "L")."""
    resize = int(math.floor(pre.input_size / pre.crop_fraction))
    grey = [T.Grayscale(1)] if len(pre.mean) == 1 else []
    return T.Compose([
        T.ToImage(),
        *grey,
        T.Resize(resize, interpolation=_MODES[pre.interpolation], antialias=True),
        T.CenterCrop(pre.input_size),
        T.ToDtype(torch.float32, scale=True),
        T.Normalize(pre.mean, pre.std),
    ])


def default_preprocessing(resolution: int, in_chans: int = 3) -> Preprocessing:
    """What a model without weights metadata gets: the official TF eval crop at its size,
    ImageNet statistics (averaged over the planes for a one-channel network)."""
    pre = Preprocessing.tf_efficientnet(resolution)
    if in_chans == 1:
        pre = replace(pre, mean=(sum(pre.mean) / 3,), std=(sum(pre.std) / 3,))
    return pre


def preprocessing_for(model: torch.nn.Module) -> Preprocessing:
    """How inputs to ``model`` must be prepared: its weights' preprocessing when they carry
    one, else the official TF eval preprocessing at the spec's resolution (224 without a
    spec). The one place that decides a model's input size."""
    pre = getattr(model, "preprocessing", None)
    if pre is not None:
        return pre
    spec = getattr(model, "spec", None)
    return default_preprocessing(spec.resolution, spec.in_chans) if spec is not None else default_preprocessing(224)


def input_size(model: torch.nn.Module) -> int:
    """The image side ``model`` expects (see :func:`preprocessing_for`)."""
    return int(preprocessing_for(model).input_size)


def transforms_for(model: torch.nn.Module) -> T.Compose:
    """The eval transform that matches a model's weights (from their metadata), or the
    official TF eval preprocessing at the model's native resolution."""
    return eval_transform(preprocessing_for(model))


AUTO_AUGMENTS = ("autoaugment", "randaugment")
TRAIN_CROPS = ("random_resized", "pad_crop")


def model_input(image: Image.Image, transform: T.Compose) -> torch.Tensor:
    """An RGB image (as ``load_image``, ``decode_image`` and ``to_rgb`` give it) as the model
    takes it: its aspect ratio limited, then the eval transform. The one preparation shared by
    predict, cam and serve."""
    return transform(limit_aspect(image))


def train_transform(input_size: int, *, mean: tuple[float, ...], std: tuple[float, ...],
                    crop: str = "random_resized", scale: tuple[float, float] = (0.08, 1.0),
                    ratio: tuple[float, float] = (3 / 4, 4 / 3), padding: int = 4,
                    interpolation: str = "bicubic", hflip: float = 0.5, auto_augment: str | None = None,
                    randaugment_n: int = 2, randaugment_m: int = 10, resize_first: bool = False) -> T.Compose:
    """PIL image or uint8 tensor -> augmented, normalised float tensor (training).

    The official recipe (``preprocessing.py``): a random crop covering 8%..100% of the
    area with aspect 3/4..4/3, bicubic resize to ``input_size``, horizontal flip, then
    AutoAugment or RandAugment (N=2, M=10..28) on the uint8 image. ``crop="pad_crop"`` instead
    pads ``padding`` pixels and takes a random ``input_size`` crop, the usual choice for
    28 px images, where an 8% crop keeps almost nothing; ``resize_first`` resizes the image to
    ``input_size`` before that (progressive learning's smaller stages).
    """
    if crop not in TRAIN_CROPS:
        raise ValueError(f"crop must be one of {TRAIN_CROPS}, got {crop!r}")
    if auto_augment not in (None, *AUTO_AUGMENTS):
        raise ValueError(f"auto_augment must be one of {AUTO_AUGMENTS} or None, got {auto_augment!r}")
    mode = _MODES[interpolation]
    steps: list[object] = [T.ToImage()]
    if crop == "random_resized":
        steps.append(T.RandomResizedCrop(input_size, scale=scale, ratio=ratio, interpolation=mode, antialias=True))
    else:
        if resize_first:
            steps.append(T.Resize(input_size, interpolation=mode, antialias=True))
        steps.append(T.RandomCrop(input_size, padding=padding, pad_if_needed=True))
    if hflip > 0:
        steps.append(T.RandomHorizontalFlip(hflip))
    # torchvision rotates/shears tensors only with nearest or bilinear sampling.
    aa_mode = InterpolationMode.BILINEAR
    if auto_augment == "autoaugment":
        steps.append(T.AutoAugment(T.AutoAugmentPolicy.IMAGENET, interpolation=aa_mode))
    elif auto_augment == "randaugment":
        steps.append(T.RandAugment(num_ops=randaugment_n, magnitude=randaugment_m, interpolation=aa_mode))
    steps += [T.ToDtype(torch.float32, scale=True), T.Normalize(mean, std)]
    return T.Compose(steps)

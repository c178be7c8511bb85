"""Datasets for training: a folder of your own photos (one sub-folder per class), Fashion-
MNIST, and the held-out "minival" split the paper takes from the training set.

The official recipe holds out 25K ImageNet training images as minival for early stopping
(paper section 5.2); :func:`minival_split` does the same for any dataset, with a fixed seed
so that every run, and every process of a distributed run, holds out the same images.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch.utils.data import Dataset, Subset
from torchvision.datasets import ImageFolder

from .fashion_mnist import FashionMNIST

DATASETS = ("fashion_mnist", "folder")


def _loader(channels: int) -> Callable[[str], Image.Image]:
    # PIL's "L" -> "RGB" conversion repeats the grey plane; "RGB" -> "L" uses ITU-R 601 luma.
    mode = "L" if channels == 1 else "RGB"

    def load(path: str) -> Image.Image:
        try:
            with open(path, "rb") as f:
                return Image.open(f).convert(mode)
        except (OSError, ValueError) as error:
            raise ValueError(f"cannot read image {path}: {error}; remove or replace the file") from None

    return load


def image_folder(root: str | os.PathLike[str], transform: Callable[[Any], Any] | None = None, *,
                 channels: int = 3) -> ImageFolder:
    """A tree ``root/CLASS_NAME/*.jpg`` as a dataset (classes in sorted folder order).

    ``channels=1`` reads every image as grey; ``channels=3`` reads grey images repeated to RGB.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist; expected {root}/CLASS_NAME/IMAGE files")
    try:
        return ImageFolder(str(root), transform=transform, loader=_loader(channels))
    except FileNotFoundError as error:
        raise FileNotFoundError(f"{root}: {error}. Put each class's images in its own sub-folder, "
                                f"e.g. {root}/cat/1.jpg, {root}/dog/2.jpg") from None


def minival_split(dataset: Dataset, size: int | float, seed: int = 0) -> tuple[Subset, Subset]:
    """Split off ``size`` examples (a count, or a fraction if < 1) as minival.

    The permutation depends only on ``seed`` and ``len(dataset)``: the same split every run.
    """
    n = len(dataset)  # type: ignore[arg-type]
    count = int(round(size * n)) if isinstance(size, float) and size < 1 else int(size)
    if not 0 < count < n:
        raise ValueError(f"minival size {size} leaves no training or no minival images out of {n}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    return Subset(dataset, sorted(order[count:])), Subset(dataset, sorted(order[:count]))


class Transformed(Dataset):
    """A view of a dataset with its own transform (train and minival share one base)."""

    def __init__(self, base: Dataset, transform: Callable[[Any], Any] | None) -> None:
        self.base = base
        self.transform = transform

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image, label = self.base[index]
        return (self.transform(image) if self.transform is not None else image), label


def class_names(dataset: Dataset) -> tuple[str, ...]:
    """Class names of a dataset, seen through Subset/Transformed wrappers."""
    while isinstance(dataset, (Subset, Transformed)):
        dataset = dataset.dataset if isinstance(dataset, Subset) else dataset.base
    return tuple(dataset.classes)


def load_split(name: str, split: str, root: str | os.PathLike[str] | None = None, *,
               channels: int = 1, download: bool = False) -> Dataset:
    """The raw (untransformed) ``train`` or ``test`` split of a named dataset.

    For ``folder``, ``root`` holds ``train/`` and ``test/`` (or ``val/``) class trees.
    """
    if name == "fashion_mnist":
        return FashionMNIST(root, split, channels=channels, download=download)
    if name == "folder":
        if root is None:
            raise ValueError("dataset 'folder' needs data.root: a folder with train/ and test/ (or val/) class trees")
        sub = Path(root) / split
        if split == "test" and not sub.is_dir() and (Path(root) / "val").is_dir():
            sub = Path(root) / "val"
        return image_folder(sub, channels=channels)
    raise ValueError(f"unknown dataset {name!r}; choose one of {DATASETS}")


__all__ = ["DATASETS", "Transformed", "class_names", "image_folder", "load_split", "minival_split"]

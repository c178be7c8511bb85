"""Datasets, transforms and loaders for a training run, from the config.

Every loader gets its own seeded ``torch.Generator`` and the training sampler shuffles with
``seed + epoch`` (``DistributedSampler.set_epoch``), so the order of examples depends only
on the seed and the epoch: this is what makes an interrupted run resume exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset
from torchvision.transforms import v2 as T

from ..data.datasets import Transformed, class_names, load_split, minival_split
from ..data.transforms import eval_transform, interpolation_mode, train_transform
from ..preprocessing import IMAGENET_MEAN, IMAGENET_STD, Preprocessing, tf_crop_fraction
from .batch_augment import BatchAugment
from .config import Config
from .distributed import DistInfo

# Fashion-MNIST training-set pixel statistics (on 0..1).
FASHION_MNIST_MEAN, FASHION_MNIST_STD = (0.2860,), (0.3530,)
# Minival held out of the training set when data.minival is unset (a count, or a fraction).
DEFAULT_MINIVAL = {"fashion_mnist": 5000}


class ResumableSampler(DistributedSampler):
    """``DistributedSampler`` (one replica when not distributed) that can skip the batches an
    interrupted epoch had already done."""

    def __init__(self, dataset: Dataset, info: DistInfo, seed: int) -> None:
        super().__init__(dataset, num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=seed,
                         drop_last=True)
        self.skip = 0

    def __iter__(self):  # type: ignore[no-untyped-def]
        indices = list(super().__iter__())
        return iter(indices[self.skip:])

    def __len__(self) -> int:
        return self.num_samples - self.skip


class EvalBatches:
    """An evaluation loader that hands out normalised float batches whichever way the run
    prepares images (per image, or uint8 batches normalised as a whole: see BatchAugment),
    so every evaluator (the loop, ``effnet eval``, the int8 benchmark) runs the model on
    what it yields and nothing else."""

    def __init__(self, loader: DataLoader, batch_augment: BatchAugment | None) -> None:
        self.loader = loader
        self.batch_augment = batch_augment

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for images, labels in self.loader:
            yield (images if self.batch_augment is None else self.batch_augment(images, train=False)), labels


@dataclass
class RunData:
    train_loader: DataLoader
    val_loader: EvalBatches
    test_loader: EvalBatches | None    # only when validation is on a minival split
    sampler: ResumableSampler
    classes: tuple[str, ...]
    image_size: int
    per_rank_batch: int
    batch_augment: BatchAugment | None  # training batches: augmented and normalised in the loop
    preprocessing: Preprocessing       # eval preprocessing (saved with the trained model)
    minival: int                       # images held out from train for model selection (0: none)
    # A training loader with another per-image transform, the same sampler (progressive
    # learning: each stage trains at its own image size and augmentation strength).
    loader_with: Callable[[Callable[[Any], Any]], DataLoader] | None = None
    native_size: int | None = None


def _stats(config: Config, weights_pre: Preprocessing | None) -> tuple[tuple[float, ...], tuple[float, ...]]:
    d = config.data
    if d.mean is not None and d.std is not None:
        mean, std = tuple(d.mean), tuple(d.std)
    elif weights_pre is not None:  # fine-tuning: the weights' own normalisation
        mean, std = weights_pre.mean, weights_pre.std
    elif d.dataset == "fashion_mnist":
        mean, std = FASHION_MNIST_MEAN, FASHION_MNIST_STD
    else:
        mean, std = IMAGENET_MEAN, IMAGENET_STD
    if len(mean) == 1 and d.channels == 3:
        mean, std = mean * 3, std * 3
    if len(mean) == 3 and d.channels == 1:
        mean, std = (sum(mean) / 3,), (sum(std) / 3,)
    return mean, std


def _shard(dataset: Dataset, info: DistInfo) -> Dataset:
    """Every rank evaluates a disjoint slice; the counts are summed afterwards."""
    return Subset(dataset, range(info.rank, len(dataset), info.world_size)) if info.enabled else dataset  # type: ignore[arg-type]


def _native_size(dataset: Dataset) -> int | None:
    """The side of a dataset whose images all share one size (Fashion-MNIST), else None."""
    images = getattr(dataset, "images", None)
    return int(images.shape[-1]) if isinstance(images, torch.Tensor) and images.shape[-1] == images.shape[-2] else None


def stage_transform(config: Config, pre: Preprocessing, size: int, randaugment_m: int,
                    native_size: int | None) -> T.Compose:
    """The per-image training transform of a progressive-learning stage: the run's own, at
    ``size`` pixels and RandAugment magnitude ``randaugment_m``."""
    d = config.data
    return train_transform(size, mean=pre.mean, std=pre.std, crop=d.crop, scale=(d.scale_min, 1.0),
                           padding=d.padding, interpolation=pre.interpolation, hflip=d.hflip,
                           auto_augment=d.auto_augment, randaugment_n=d.randaugment_n, randaugment_m=randaugment_m,
                           resize_first=native_size is not None and native_size != size)


def _transforms(config: Config, pre: Preprocessing, native_size: int | None):  # type: ignore[no-untyped-def]
    """(train transform, eval transform, batch augmentation or None)."""
    d = config.data
    size, mode = pre.input_size, interpolation_mode(pre.interpolation)
    if d.batch_augment:
        # Per image only what makes a batch stackable (uint8 at the final size); the rest
        # happens on whole batches (see effnet.train.batch_augment).
        to_size = None if native_size == size else T.Compose(
            [T.ToImage(), T.Resize(size, interpolation=mode, antialias=True), T.CenterCrop(size)])
        augment = BatchAugment(pre.mean, pre.std, padding=d.padding if d.crop == "pad_crop" else 0, hflip=d.hflip)
        return to_size, to_size, augment
    return stage_transform(config, pre, size, d.randaugment_m, native_size), eval_transform(pre), None


def _preprocessing(config: Config, size: int, weights_pre: Preprocessing | None) -> Preprocessing:
    d = config.data
    mean, std = _stats(config, weights_pre)
    crop_fraction = d.eval_crop_fraction or (1.0 if d.dataset == "fashion_mnist" else
                                             (weights_pre.crop_fraction if weights_pre else tf_crop_fraction(size)))
    interpolation = weights_pre.interpolation if weights_pre else "bicubic"
    return Preprocessing(size, crop_fraction, interpolation, mean, std)


def minival_size(config: Config) -> float:
    """Images held out from the training set to choose the best checkpoint: ``data.minival``,
    or by default 5,000 for Fashion-MNIST (of 60,000) and 10% of a folder's training images."""
    d = config.data
    if d.minival is not None:
        return d.minival
    return DEFAULT_MINIVAL.get(d.dataset, 0.1)


def build_eval_loader(config: Config, split: str, pre: Preprocessing,
                      info: DistInfo = DistInfo()) -> tuple[EvalBatches, tuple[str, ...]]:
    """(normalised batches, class names) for ``test`` or ``minival``, prepared the way the
    run's validation was."""
    d = config.data
    if split not in ("test", "minival"):
        raise ValueError(f"split must be test or minival, got {split!r}")
    base = load_split(d.dataset, "train" if split == "minival" else "test", d.root, channels=d.channels,
                      download=d.download)
    classes = class_names(base)
    native = _native_size(base)
    if split == "minival":
        held_out = minival_size(config)
        if not held_out:
            raise ValueError("this run has no minival split (data.minival=0); evaluate on --split test")
        base = minival_split(base, held_out, seed=d.minival_seed)[1]
    _, eval_tf, batch_augment = _transforms(config, pre, native)
    loader = DataLoader(_shard(Transformed(base, eval_tf), info), batch_size=config.train.eval_batch_size,
                        num_workers=d.num_workers, generator=torch.Generator().manual_seed(config.train.seed))
    return EvalBatches(loader, batch_augment), classes


def build_data(config: Config, info: DistInfo, *, resolution: int,
               weights_pre: Preprocessing | None = None, pin_memory: bool = False) -> RunData:
    d, t = config.data, config.train
    if t.batch_size % info.world_size:
        raise ValueError(f"train.batch_size={t.batch_size} must divide evenly over {info.world_size} processes")
    size = d.image_size or resolution
    pre = _preprocessing(config, size, weights_pre)

    train_base = load_split(d.dataset, "train", d.root, channels=d.channels, download=d.download)
    test_base = load_split(d.dataset, "test", d.root, channels=d.channels, download=d.download)
    classes = class_names(train_base)
    test_set: Dataset | None = None
    held_out = minival_size(config)
    if held_out:
        train_base, val_base = minival_split(train_base, held_out, seed=d.minival_seed)
        test_set = test_base
    else:  # data.minival=0: the user chose to select on the test set (reported as such)
        val_base = test_base
    if d.train_subset:
        train_base = Subset(train_base, range(min(d.train_subset, len(train_base))))  # type: ignore[arg-type]
    if d.eval_subset:
        val_base = Subset(val_base, range(min(d.eval_subset, len(val_base))))  # type: ignore[arg-type]
        if test_set is not None:
            test_set = Subset(test_set, range(min(d.eval_subset, len(test_set))))  # type: ignore[arg-type]

    native = _native_size(train_base)
    train_tf, eval_tf, batch_augment = _transforms(config, pre, native_size=native)
    train_set = Transformed(train_base, train_tf)
    sampler = ResumableSampler(train_set, info, seed=t.seed)
    per_rank = t.batch_size // info.world_size
    if len(sampler) < per_rank:
        raise ValueError(f"only {len(sampler)} training images per process, fewer than one batch of {per_rank}; "
                         "lower train.batch_size or use more data")

    def loader(dataset: Dataset, batch: int, **kwargs: object) -> DataLoader:
        return DataLoader(dataset, batch_size=batch, num_workers=d.num_workers, pin_memory=pin_memory,
                          persistent_workers=d.num_workers > 0,
                          generator=torch.Generator().manual_seed(t.seed), **kwargs)  # type: ignore[arg-type]

    def eval_batches(dataset: Dataset) -> EvalBatches:
        return EvalBatches(loader(_shard(Transformed(dataset, eval_tf), info), t.eval_batch_size), batch_augment)

    return RunData(
        train_loader=loader(train_set, per_rank, sampler=sampler, drop_last=True),
        val_loader=eval_batches(val_base),
        test_loader=None if test_set is None else eval_batches(test_set),
        sampler=sampler, classes=classes, image_size=size, per_rank_batch=per_rank,
        batch_augment=batch_augment, preprocessing=pre, minival=len(val_base) if test_set is not None else 0,
        loader_with=lambda transform: loader(Transformed(train_base, transform), per_rank, sampler=sampler,
                                             drop_last=True),
        native_size=native,
    )


__all__ = ["DEFAULT_MINIVAL", "EvalBatches", "FASHION_MNIST_MEAN", "FASHION_MNIST_STD", "ResumableSampler", "RunData",
           "build_data", "build_eval_loader", "minival_size", "stage_transform"]

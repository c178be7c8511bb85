"""Class names that ship with effnet (the 1000 ImageNet-1k classes, in index order)."""

from __future__ import annotations

from functools import cache
from importlib import resources

from .errors import WeightsError

CLASS_LISTS = ("imagenet",)


@cache
def imagenet_classes() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names, index i = logit i (the usual short names)."""
    text = resources.files("effnet.data").joinpath("imagenet_classes.txt").read_text(encoding="utf-8")
    names = tuple(line for line in text.splitlines() if line)
    if len(names) != 1000:
        raise WeightsError(f"effnet/data/imagenet_classes.txt holds {len(names)} names, not 1000: reinstall effnet")
    return names


def class_list(name: str) -> tuple[str, ...]:
    if name == "imagenet":
        return imagenet_classes()
    raise WeightsError(f"unknown class list {name!r}; effnet ships {', '.join(CLASS_LISTS)}")

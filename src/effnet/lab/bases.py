"""Baselines for the laboratory, adapted to a dataset.

The paper scales networks whose input (224 px) is far below ImageNet's originals, so larger
resolutions add real information. To keep that true on Fashion-MNIST (28 px), the baselines
here run at 16 px by default: resolution scaling up to 28 px adds detail that exists.
"""

from __future__ import annotations

from ..scaling import scale
from ..spec import NetworkSpec
from ..train.build import resolve_network
from ..train.small import fashion_mnist_base

DEFAULT_RESOLUTION = 16


def fmnist_lab_base(in_chans: int = 1, num_classes: int = 10) -> NetworkSpec:
    """The training issue's 28 px network at half width: cheap enough for many proxy trials."""
    small = scale(fashion_mnist_base(in_chans, num_classes), width=0.5, name="fmnist_lab")
    return small.replace(resolution=DEFAULT_RESOLUTION)


LAB_BASES = {"fmnist_lab": fmnist_lab_base}


def lab_base(name: str, *, in_chans: int = 1, num_classes: int = 10, resolution: int | None = None) -> NetworkSpec:
    """A lab base or any registered/preset network, adapted to the dataset's channels and
    classes, at ``resolution`` (default 16 px)."""
    spec = LAB_BASES[name](in_chans, num_classes) if name in LAB_BASES else resolve_network(name)
    # Proxy runs last a few hundred steps: with TF's BN decay 0.99 (momentum 0.01) the running
    # statistics would stay near their initial values and evaluation would be noise.
    return spec.replace(in_chans=in_chans, num_classes=num_classes, bn_momentum=max(spec.bn_momentum, 0.1),
                        resolution=resolution or DEFAULT_RESOLUTION)

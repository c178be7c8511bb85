"""``create_model``: a name or a spec in, a ready model out (weights included).

It sits above ``effnet.weights`` because loading weights may change the spec (padding and
BN epsilon come from a weights file's metadata, not from arguments the user must know).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from torch import nn

from .model import build_model
from .spec import NetworkSpec
from .weights import LoadedWeights, create_with_weights
from .zoo import resolve_spec


def create_model(name_or_spec: str | NetworkSpec | None, num_classes: int | None = None,
                 in_chans: int | None = None, drop_rate: float | None = None,
                 drop_path_rate: float | None = None, padding: str | None = None, *,
                 bn_eps: float | None = None, bn_momentum: float | None = None,
                 weights: str | os.PathLike[str] | LoadedWeights | None = None,
                 features_only: bool = False, out_indices: Sequence[int] | None = None) -> nn.Module:
    """Build a registered model (see ``list_models``) or any ``NetworkSpec``.

    Arguments left as ``None`` keep the spec's value (or, with ``weights``, the value the
    weights were trained with). ``padding`` is ``"same"`` (TF, exact for TF-trained weights)
    or ``"symmetric"``. ``weights`` is a registered tag, a local ``.safetensors``/``.pth``
    file, a run folder of ``effnet train`` or ``hf-hub:ORG/REPO``; see
    :func:`effnet.weights.load_weights`. With weights that carry their network (every file
    effnet writes), ``name_or_spec`` may be ``None``.
    """
    if weights is not None:
        return create_with_weights(
            name_or_spec, weights, num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate,
            drop_path_rate=drop_path_rate, padding=padding, bn_eps=bn_eps, bn_momentum=bn_momentum,
            features_only=features_only, out_indices=out_indices,
        )
    if name_or_spec is None:
        raise TypeError("create_model needs a model name or a NetworkSpec (or weights that name their network)")
    spec = resolve_spec(name_or_spec, num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate,
                        drop_path_rate=drop_path_rate, padding=padding, bn_eps=bn_eps, bn_momentum=bn_momentum)
    return build_model(spec, features_only=features_only, out_indices=out_indices)

"""``create_model``: a name or a spec in, a ready model out (weights included).

It sits above ``effnet.weights`` because loading weights may change the spec (padding and
BN epsilon come from a weights file's metadata, not from arguments the user must know).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from .model import build_model
from .spec import NetworkSpec
from .zoo import get_spec


def resolve_spec(name_or_spec: str | NetworkSpec, *, num_classes: int | None = None,
                 in_chans: int | None = None, drop_rate: float | None = None,
                 drop_path_rate: float | None = None, padding: str | None = None,
                 bn_eps: float | None = None) -> NetworkSpec:
    """The registered (or given) spec with the caller's overrides applied."""
    spec = get_spec(name_or_spec) if isinstance(name_or_spec, str) else name_or_spec
    if not isinstance(spec, NetworkSpec):
        raise TypeError(f"create_model takes a model name or a NetworkSpec, got {type(name_or_spec).__name__}")
    overrides = {
        "num_classes": num_classes, "in_chans": in_chans, "dropout": drop_rate,
        "drop_path_rate": drop_path_rate, "padding": padding, "bn_eps": bn_eps,
    }
    changes = {key: value for key, value in overrides.items() if value is not None}
    return spec.replace(**changes) if changes else spec


def create_model(name_or_spec: str | NetworkSpec, num_classes: int | None = None,
                 in_chans: int | None = None, drop_rate: float | None = None,
                 drop_path_rate: float | None = None, padding: str | None = None, *,
                 bn_eps: float | None = None, weights: str | None = None,
                 features_only: bool = False, out_indices: Sequence[int] | None = None) -> nn.Module:
    """Build a registered model (see ``list_models``) or any ``NetworkSpec``.

    Arguments left as ``None`` keep the spec's value (or, with ``weights``, the value the
    weights were trained with). ``padding`` is ``"same"`` (TF, exact for TF-trained weights)
    or ``"symmetric"``. ``weights`` is a registered tag, a local ``.safetensors``/``.pth``
    file or ``hf-hub:ORG/REPO``; see :func:`effnet.weights.load_weights`.
    """
    if weights is not None:
        from .weights import create_with_weights

        return create_with_weights(
            name_or_spec, weights, num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate,
            drop_path_rate=drop_path_rate, padding=padding, bn_eps=bn_eps,
            features_only=features_only, out_indices=out_indices,
        )
    spec = resolve_spec(name_or_spec, num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate,
                        drop_path_rate=drop_path_rate, padding=padding, bn_eps=bn_eps)
    return build_model(spec, features_only=features_only, out_indices=out_indices)

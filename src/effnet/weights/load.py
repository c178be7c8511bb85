"""Weights in, ready model out: find the weights (tag, file or hub), check they fit, build
the network with the padding and BN epsilon they were trained with, load them, and attach
their preprocessing and class names."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..model import ConvNet, build_model
from ..spec import NetworkSpec
from ..spec_json import same_architecture
from ..zoo import UnknownModelError, get_spec, resolve_spec
from .convert import classifier_width, convert_state_dict
from .errors import WeightsError
from .files import read_weights
from .hub import PREFIX as HUB_PREFIX, HubFile
from .layouts import Layout
from .metadata import WeightsMeta
from .registry import get_weights_entry
from .run_folder import RunFolder


@dataclass(frozen=True)
class LoadedWeights:
    """A state dict as found (any layout), what is known about it, and where it came from."""

    state_dict: dict[str, torch.Tensor]
    meta: WeightsMeta | None
    origin: str
    layout: str | Layout | None = None  # None: recognise from the keys


def fetch_weights(weights: str | os.PathLike[str]) -> LoadedWeights:
    """Read weights given as a registered tag, a local file, a run folder of ``effnet train``
    (its ``model.safetensors``) or ``hf-hub:ORG/REPO``."""
    text = os.fspath(weights)
    if text.startswith(HUB_PREFIX):
        hub_file = HubFile.parse(text)
        state_dict, meta = read_weights(hub_file.locate())
        return LoadedWeights(state_dict, meta, str(hub_file))
    path = Path(text).expanduser()
    if path.is_dir():
        path = RunFolder(path).trained_model()
    if path.is_file():
        state_dict, meta = read_weights(path)
        return LoadedWeights(state_dict, meta, str(path))
    if path.suffix.lower() in (".safetensors", ".pth", ".pt", ".bin", ".ckpt") or os.sep in text:
        raise WeightsError(f"weights file {path} does not exist")
    entry = get_weights_entry(text)
    state_dict, _ = read_weights(entry.fetch.locate())
    return LoadedWeights(state_dict, entry.meta(), f"weights {entry.tag!r}", entry.layout)


def create_with_weights(name_or_spec: str | NetworkSpec | None, weights: str | os.PathLike[str] | LoadedWeights, *,
                        num_classes: int | None = None, in_chans: int | None = None,
                        drop_rate: float | None = None, drop_path_rate: float | None = None,
                        padding: str | None = None, bn_eps: float | None = None, bn_momentum: float | None = None,
                        features_only: bool = False, out_indices: Sequence[int] | None = None) -> nn.Module:
    """``create_model(..., weights=...)``: see :func:`effnet.create_model`.

    Padding and BN epsilon come from the weights (a different value is refused: the outputs
    would silently change). A ``num_classes`` other than the weights' loads everything but the
    classifier, which starts fresh (fine-tuning); ``features_only`` loads the trunk only.
    ``name_or_spec=None`` rebuilds the network the weights file describes.
    """
    loaded = weights if isinstance(weights, LoadedWeights) else fetch_weights(weights)
    meta = loaded.meta
    spec = weights_spec(name_or_spec, loaded)
    trained = _trained_settings(loaded, padding=padding, bn_eps=bn_eps)
    weights_classes = meta.num_classes if meta is not None else classifier_width(loaded.state_dict, loaded.layout)
    full = resolve_spec(spec, num_classes=weights_classes, in_chans=in_chans, drop_rate=drop_rate,
                        drop_path_rate=drop_path_rate, bn_momentum=bn_momentum, **trained)  # type: ignore[arg-type]
    state_dict = convert_state_dict(loaded.state_dict, full, loaded.layout, what=loaded.origin)

    model = build_model(full, features_only=features_only, out_indices=out_indices)
    _load_subset(model, state_dict)
    if isinstance(model, ConvNet) and num_classes is not None and num_classes != weights_classes:
        model.reset_classifier(num_classes)
    model.preprocessing = meta.preprocessing if meta is not None else None
    if isinstance(model, ConvNet):
        keeps_classes = meta is not None and model.num_classes == meta.num_classes
        model.class_names = meta.class_names if keeps_classes else None
    return model


def load_weights(model: nn.Module, weights: str | os.PathLike[str] | LoadedWeights) -> nn.Module:
    """Load weights into a model you built yourself (any padding or BN epsilon you chose).

    Every tensor of the weights must fit; the model's preprocessing and class names are set
    from the weights' metadata when it has some.
    """
    loaded = weights if isinstance(weights, LoadedWeights) else fetch_weights(weights)
    spec: NetworkSpec = model.spec  # type: ignore[assignment]
    if isinstance(model, ConvNet):
        spec = spec.replace(num_classes=model.num_classes)
    state_dict = convert_state_dict(loaded.state_dict, spec, loaded.layout, what=loaded.origin)
    _load_subset(model, state_dict)
    if loaded.meta is not None:
        model.preprocessing = loaded.meta.preprocessing
        if isinstance(model, ConvNet) and model.num_classes == loaded.meta.num_classes:
            model.class_names = loaded.meta.class_names
    return model


def _trained_settings(loaded: LoadedWeights, **requested: object) -> dict[str, object]:
    """Padding and BN epsilon: the weights' own when they say; a request that differs is
    refused, because it would change every output without a word."""
    if loaded.meta is None:
        return requested
    for setting, value in requested.items():
        trained = getattr(loaded.meta, setting)
        if value is not None and value != trained:
            raise WeightsError(
                f"{loaded.origin} were trained with {setting}={trained!r}; {setting}={value!r} would change "
                f"every output. Leave {setting} unset (to change it anyway, build the model with "
                "create_model() and call effnet.load_weights() on it)")
    return {setting: getattr(loaded.meta, setting) for setting in requested}


def weights_spec(name_or_spec: str | NetworkSpec | None, loaded: LoadedWeights) -> NetworkSpec:
    """The network asked for (``None``: the one the weights name), after checking that the
    weights were made for it."""
    meta = loaded.meta
    saved = meta.spec if meta is not None else None
    if saved is None and meta is not None:
        try:
            saved = get_spec(meta.architecture)
        except UnknownModelError:
            saved = None
    if name_or_spec is None:
        if saved is None:
            raise WeightsError(f"{loaded.origin} do not say which network they belong to; "
                               "pass a model name: create_model(NAME, weights=...)")
        return saved
    spec = get_spec(name_or_spec) if isinstance(name_or_spec, str) else name_or_spec
    if saved is not None and not same_architecture(spec, saved):
        raise WeightsError(f"{loaded.origin} are for {meta.architecture}, not {spec.name}; "  # type: ignore[union-attr]
                           f"use create_model({meta.architecture!r}, weights=...)")  # type: ignore[union-attr]
    return spec


def _load_subset(model: nn.Module, state_dict: dict[str, torch.Tensor]) -> None:
    """Load the tensors the model has (a FeatureNet has no head and maybe fewer stages)."""
    own = model.state_dict()
    model.load_state_dict({key: value for key, value in state_dict.items() if key in own}, strict=False)
    absent = [key for key in own if key not in state_dict and not key.endswith("num_batches_tracked")]
    if absent:  # convert_state_dict already checked every key; this guards the builder.
        raise WeightsError(f"internal error: the model has tensors the weights did not fill: {absent[:5]}")

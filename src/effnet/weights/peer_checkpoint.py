"""A peer's checkpoint file -> an effnet ``.safetensors`` that carries its own metadata
(what ``effnet convert`` does)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from ..preprocessing import Preprocessing
from ..zoo import get_spec
from .classes import class_list
from .convert import classifier_width, convert_state_dict, get_layout
from .errors import WeightsError
from .files import read_weights, save_weights
from .metadata import WeightsMeta
from .peer_names import peer_weights


def convert_checkpoint(src: str | os.PathLike[str], dst: str | os.PathLike[str], *, source: str, model: str,
                       class_names: tuple[str, ...] | str | None = "imagenet",
                       preprocessing: Preprocessing | None = None, top1: float | None = None,
                       licence: str = "", note: str = "") -> WeightsMeta:
    """Convert ``src`` (a timm, torchvision or lukemelas state dict) for the peer model
    ``model`` and write ``dst``. Padding, BN epsilon and preprocessing follow from the peer
    and its model name (see ``effnet.weights.peer_names``); ``class_names`` is a list, the name of
    a list effnet ships ("imagenet", used when the classifier has 1000 outputs), or None."""
    layout = get_layout(source)
    settings = peer_weights(layout.name, model)
    state_dict, _ = read_weights(src)
    num_classes = classifier_width(state_dict, layout)
    spec = get_spec(settings.architecture).replace(padding=settings.padding, bn_eps=settings.bn_eps,
                                                   num_classes=num_classes)
    converted = convert_state_dict(state_dict, spec, layout, what=f"{src}")
    if isinstance(class_names, str):
        class_names = class_list(class_names) if num_classes == 1000 else None
    if class_names is not None and len(class_names) != num_classes:
        raise WeightsError(f"{len(class_names)} class names given, but the classifier of {src} has "
                           f"{num_classes} outputs")
    meta = WeightsMeta(
        architecture=settings.architecture, padding=settings.padding, bn_eps=settings.bn_eps,
        preprocessing=preprocessing or settings.preprocessing, num_classes=num_classes,
        class_names=tuple(class_names) if class_names is not None else None, spec=spec,
        source=note or f"{layout.name} {model}, converted from {Path(src).name}", licence=licence, top1=top1,
    )
    save_weights(dst, converted, meta)
    return meta


def read_class_names(path: str | os.PathLike[str]) -> tuple[str, ...]:
    """Class names from a text file, one per line in logit order."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise WeightsError(f"cannot read class names from {path} ({error.strerror})") from None
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def with_preprocessing(base: Preprocessing, **changes: object) -> Preprocessing:
    """``base`` with the given fields changed (None leaves a field alone)."""
    return dataclasses.replace(base, **{k: v for k, v in changes.items() if v is not None})  # type: ignore[arg-type]

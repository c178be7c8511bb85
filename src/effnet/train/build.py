"""What a training run trains, decided before anything is built: the network (a registered
name, a spec, or pretrained weights for fine-tuning), the data prepared the way those weights
expect, and then the model, built once through ``create_model``."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..factory import create_model
from ..scaling import scale
from ..spec import NetworkSpec
from ..weights import LoadedWeights, fetch_weights, weights_spec
from ..zoo import resolve_spec
from .config import Config, ConfigError
from .data import RunData, build_data
from .distributed import DistInfo


@dataclass
class RunModel:
    model: nn.Module
    data: RunData
    weights: LoadedWeights | None   # fine-tuning: what the model started from


def _network(config: Config, given_spec: NetworkSpec | None, loaded: LoadedWeights | None) -> NetworkSpec:
    m = config.model
    if loaded is not None:  # fine-tuning: the network the weights were made for
        return weights_spec(m.name, loaded)
    spec = given_spec or resolve_spec(m.spec or m.name)  # type: ignore[arg-type]
    if m.width is not None or m.depth is not None:
        spec = scale(spec, m.width or 1.0, m.depth or 1.0)
    return spec


def build_run_model(config: Config, info: DistInfo, given_spec: NetworkSpec | None = None) -> RunModel:
    """The model and data of a run. Fine-tuning takes the network and the normalisation from
    the weights and gives the model a new classifier for the data's classes; training from
    scratch takes the classes and the input channels from the data."""
    m, d = config.model, config.data
    loaded = fetch_weights(m.weights) if m.weights is not None else None
    spec = _network(config, given_spec, loaded)
    if loaded is not None and spec.in_chans != d.channels:
        raise ConfigError(f"model.weights={m.weights} take {spec.in_chans}-channel images: set data.channels={spec.in_chans}")
    # QAT exports the network without stochastic depth (its random mask would be baked into the graph).
    drop_path_rate = 0.0 if config.quant.qat else m.drop_path_rate
    weights_pre = loaded.meta.preprocessing if loaded is not None and loaded.meta is not None else None
    data = build_data(config, info, resolution=spec.resolution, weights_pre=weights_pre)
    num_classes = m.num_classes or len(data.classes)
    if loaded is not None:
        model = create_model(spec, num_classes=num_classes, drop_rate=m.drop_rate, drop_path_rate=drop_path_rate,
                             bn_momentum=m.bn_momentum, weights=loaded)
    else:
        model = create_model(spec, num_classes=num_classes, in_chans=d.channels, drop_rate=m.drop_rate,
                             drop_path_rate=drop_path_rate, bn_momentum=m.bn_momentum)
    # What the trained model will be used with: the data's classes and eval preprocessing.
    model.class_names = data.classes if len(data.classes) == num_classes else None
    model.preprocessing = data.preprocessing
    return RunModel(model, data, loaded)


def is_head(name: str) -> bool:
    return name.startswith("classifier.")


def set_backbone_frozen(model: nn.Module, frozen: bool) -> None:
    """Freeze (or unfreeze) every parameter except the classifier's. Batch norm keeps
    updating its statistics, which adapts them to the new data."""
    for name, p in model.named_parameters():
        if not is_head(name):
            p.requires_grad_(not frozen)


__all__ = ["RunModel", "build_run_model", "is_head", "set_backbone_frozen"]

"""Foreign state dicts -> ours (and back), through the tables in ``layouts``, with every
name and shape checked before a single tensor is used."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

import torch

from ..model import build_model
from ..spec import NetworkSpec
from ..zoo import get_spec, list_models
from .errors import IncompatibleWeightsError, WeightsError
from .layouts import LAYOUTS, Layout

# BN's step counter only matters for momentum=None; checkpoints often leave it out.
OPTIONAL_LEAVES = ("num_batches_tracked",)


def reference_shapes(spec: NetworkSpec) -> dict[str, tuple[int, ...]]:
    """Our state-dict keys and shapes for a spec."""
    return dict(_reference_shapes(spec))


@lru_cache(maxsize=8)
def _reference_shapes(spec: NetworkSpec) -> tuple[tuple[str, tuple[int, ...]], ...]:
    # Built on the meta device: no memory and no real init, even for L2's 480M parameters.
    with torch.device("meta"):
        model = build_model(spec)
    return tuple((key, tuple(value.shape)) for key, value in model.state_dict().items())


def get_layout(layout: str | Layout) -> Layout:
    if isinstance(layout, Layout):
        return layout
    try:
        return LAYOUTS[layout]
    except KeyError:
        raise WeightsError(f"unknown checkpoint layout {layout!r}; choose one of {', '.join(LAYOUTS)}") from None


def detect_layout(state_dict: Mapping[str, object]) -> Layout:
    """The layout a state dict is written in, recognised by its stem conv's name."""
    for layout in LAYOUTS.values():
        if layout.signature in state_dict:
            return layout
    first = ", ".join(list(state_dict)[:3]) or "no keys at all"
    raise WeightsError(
        f"cannot tell which checkpoint layout these weights use (first keys: {first}); effnet reads its own, "
        "timm, torchvision and lukemelas EfficientNet state dicts"
    )


def classifier_width(state_dict: Mapping[str, torch.Tensor], layout: str | Layout | None = None) -> int:
    """How many classes a state dict's classifier has (0: none), read from the tensor that
    ``layout`` (recognised from the keys when None) names the classifier."""
    found = detect_layout(state_dict) if layout is None else get_layout(layout)
    weight = state_dict.get(f"{found.network['classifier']}.weight")
    return int(weight.shape[0]) if weight is not None and weight.ndim == 2 else 0


def key_map(spec: NetworkSpec, layout: str | Layout) -> dict[str, str]:
    """Our key -> their key, for every tensor of the network ``spec`` builds."""
    layout = get_layout(layout)
    if layout.name == "effnet":  # our own names, for any network (ResNet-50 too)
        return {key: key for key in reference_shapes(spec)}
    if any(stage.kind not in ("mbconv", "fused") for stage in spec.stages) or (
            any(stage.kind == "fused" for stage in spec.stages) and not layout.fused_unexpanded):
        raise WeightsError(f"{spec.name} is not an EfficientNet network the {layout.name} layout describes (it "
                           "has MBConv and, for timm and torchvision, Fused-MBConv blocks); save and load it in "
                           "effnet's own format")
    first_flat = [sum(s.repeats for s in spec.stages[:i]) for i in range(len(spec.stages))]
    mapping = {}
    for key in reference_shapes(spec):
        module, leaf = key.rsplit(".", 1)
        if module.startswith("stages."):
            _, stage, index, part = module.split(".", 3)
            s, j = int(stage), int(index)
            stage_spec = spec.stages[s]
            table = layout.table(stage_spec.kind, stage_spec.expand_ratio != 1)
            if part not in table:
                raise WeightsError(f"the {layout.name} layout has no place for {part} of a {stage_spec.kind} block "
                                   f"(stage {s} of {spec.name}); save and load it in effnet's own format")
            block = layout.block.format(stage=s, index=j, flat=first_flat[s] + j, next_stage=s + 1)
            theirs = f"{block}.{table[part]}"
        else:
            theirs = layout.network[module].format(last=len(spec.stages) + 1)
        mapping[key] = f"{theirs}.{leaf}"
    return mapping


def convert_state_dict(state_dict: Mapping[str, torch.Tensor], spec: NetworkSpec,
                       layout: str | Layout | None = None, *, what: str = "the weights") -> dict[str, torch.Tensor]:
    """A foreign (or our own) state dict renamed to our keys, after checking that every key
    and shape fits the network of ``spec``. ``layout=None`` recognises it from the keys."""
    layout = detect_layout(state_dict) if layout is None else get_layout(layout)
    mapping, missing, unexpected, mis_shaped = _match(state_dict, spec, layout)
    if missing or unexpected or mis_shaped:
        raise IncompatibleWeightsError(
            f"{what} ({layout.name} layout) and {spec.name}", missing=missing, unexpected=unexpected,
            mis_shaped=mis_shaped, hint=_hint(state_dict, layout, spec))
    return {ours: state_dict[theirs] for ours, theirs in mapping.items() if theirs in state_dict}


def _match(state_dict: Mapping[str, torch.Tensor], spec: NetworkSpec, layout: Layout):  # type: ignore[no-untyped-def]
    """The key map, and the keys that are missing, unexpected or mis-shaped."""
    mapping = key_map(spec, layout)
    shapes = reference_shapes(spec)
    missing, mis_shaped = [], []
    for ours, theirs in mapping.items():
        if theirs not in state_dict:
            if not ours.endswith(OPTIONAL_LEAVES):
                missing.append(theirs)
        elif tuple(state_dict[theirs].shape) != shapes[ours]:
            mis_shaped.append((theirs, shapes[ours], tuple(state_dict[theirs].shape)))
    wanted = set(mapping.values())
    unexpected = [key for key in state_dict if key not in wanted]
    return mapping, missing, unexpected, mis_shaped


def export_state_dict(state_dict: Mapping[str, torch.Tensor], spec: NetworkSpec,
                      layout: str | Layout) -> dict[str, torch.Tensor]:
    """Our state dict renamed to a foreign layout (to hand weights to timm, say)."""
    ours = convert_state_dict(state_dict, spec, "effnet")
    return {theirs: ours[key] for key, theirs in key_map(spec, layout).items() if key in ours}


def _hint(state_dict: Mapping[str, torch.Tensor], layout: Layout, spec: NetworkSpec) -> str:
    """Name the registered networks these weights do fit, if any: the usual mistake is the
    wrong size (b1 weights for b0) or family (B for Lite)."""
    actual = next((other for other in LAYOUTS.values() if other.signature in state_dict), None)
    if actual is not None and actual is not layout:
        return f"These are {actual.name} weights ({actual.signature} is there): convert them from {actual.name}."
    fits = []
    for name in list_models("efficientnet_*"):
        candidate = get_spec(name).replace(num_classes=spec.num_classes)
        # The head conv's shape rules out most candidates without building them.
        head = state_dict.get(layout.network["head.conv"].format(last=len(candidate.stages) + 1) + ".weight")
        if head is None or tuple(head.shape[:2]) != (candidate.head.channels, candidate.stages[-1].out_channels):
            continue
        if name != spec.name and not any(_match(state_dict, candidate, layout)[1:]):
            fits.append(name)
    if fits:
        return f"They fit {', '.join(fits)}: build that model instead."
    return "Check the model name and the checkpoint layout."

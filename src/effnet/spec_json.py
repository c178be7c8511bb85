"""A NetworkSpec as plain JSON data: weights files, training checkpoints and experiment journals
all rebuild their network from it.

Stages are written as official block strings (``r1_k3_s11_e1_i32_o16_se0.25``), which a
reader of the paper's Table 1 can check by eye.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .atomic import write_atomic
from .blockstring import format_stages, parse_stages
from .spec import HeadSpec, NetworkSpec, ScalingPolicy, SpecError, StemSpec

_SETTINGS = ("activation", "bn_eps", "bn_momentum", "padding", "resolution", "dropout", "drop_path_rate",
             "num_classes", "in_chans")


def spec_to_dict(spec: NetworkSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "stem": {"channels": spec.stem.channels, "kernel": spec.stem.kernel, "stride": spec.stem.stride,
                 "pool": spec.stem.pool},
        "blocks": format_stages(spec.stages),
        "head": {"channels": spec.head.channels},
        **{key: getattr(spec, key) for key in _SETTINGS},
        "scaling_policy": {"fixed_stem": spec.scaling_policy.fixed_stem,
                           "fixed_head": spec.scaling_policy.fixed_head,
                           "fixed_depth_stages": list(spec.scaling_policy.fixed_depth_stages)},
    }


def spec_from_dict(data: dict[str, Any]) -> NetworkSpec:
    try:
        policy = data.get("scaling_policy", {})
        return NetworkSpec(
            name=str(data["name"]),
            stem=StemSpec(**data["stem"]),
            stages=parse_stages(data["blocks"]),
            head=HeadSpec(**data["head"]),
            scaling_policy=ScalingPolicy(
                fixed_stem=bool(policy.get("fixed_stem", False)),
                fixed_head=bool(policy.get("fixed_head", False)),
                fixed_depth_stages=tuple(policy.get("fixed_depth_stages", ())),
            ),
            **{key: data[key] for key in _SETTINGS if key in data},
        )
    except (KeyError, TypeError) as error:
        raise SpecError(f"the network description is incomplete ({error!r})") from None


def spec_from_file(path: str | Path) -> NetworkSpec:
    """A network description written as JSON (:func:`spec_to_dict`; a search's ``best.json``,
    ``effnet scale --json``), with errors that name the file."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"no network description at {path}: give a .json file written by `effnet nas search` "
                        "(best.json) or spec_to_dict")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SpecError(f"{path} is not a JSON network description ({error})") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path} holds {type(data).__name__}, not a network description (an object with stem, blocks, head)")
    try:
        return spec_from_dict(data)
    except SpecError as error:
        raise SpecError(f"{path}: {error}") from None


def write_spec(spec: NetworkSpec, path: str | Path, **extra: Any) -> Path:
    """``spec`` as JSON at ``path`` (atomically), with ``extra`` keys beside it (provenance;
    readers ignore them)."""
    return write_atomic(path, json.dumps({**spec_to_dict(spec), **extra}, indent=2) + "\n")


def same_architecture(a: NetworkSpec, b: NetworkSpec) -> bool:
    """Whether two specs build the same layers (settings that only change training or the
    classifier, such as dropout or num_classes, may differ)."""
    return (a.stem, a.stages, a.head, a.activation) == (b.stem, b.stages, b.head, b.activation)

"""A NetworkSpec as plain JSON data: weights files, training checkpoints and experiment journals
all rebuild their network from it.

Stages are written as official block strings (``r1_k3_s11_e1_i32_o16_se0.25``), which a
reader of the paper's Table 1 can check by eye.
"""

from __future__ import annotations

from typing import Any

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


def same_architecture(a: NetworkSpec, b: NetworkSpec) -> bool:
    """Whether two specs build the same layers (settings that only change training or the
    classifier, such as dropout or num_classes, may differ)."""
    return (a.stem, a.stages, a.head, a.activation) == (b.stem, b.stages, b.head, b.activation)

"""The scaling rules of the paper (section 3.3) and the official code, as pure functions.

``round_filters`` and ``round_repeats`` are the official ones (tensorflow/tpu
``efficientnet_model.py``); ``scale`` applies width/depth/resolution multipliers to any
:class:`~effnet.spec.NetworkSpec`; ``compound_coefficients`` is the paper's formula
``d = alpha^phi, w = beta^phi, r = gamma^phi``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from .spec import HeadSpec, NetworkSpec, SpecError, StageSpec

ALPHA, BETA, GAMMA = 1.2, 1.1, 1.15  # the paper's grid-search result for B0 (section 4)
DEFAULT_CONSTRAINT_TOLERANCE = 0.1
# No multiplier past this: L2, the largest published EfficientNet, is width 4.3, depth 5.3;
# a 64x deeper network has thousands of blocks, and much more cannot be counted or built.
MAX_MULTIPLIER = 64.0


def round_filters(filters: int, width: float | None, divisor: int = 8, round_limit: float = 0.9) -> int:
    """Channels after width scaling, a multiple of ``divisor`` (official code).

    Rounds to the nearest multiple but never drops below ``round_limit`` of the scaled
    value (V1: 0.9; EfficientNetV2's code has no such step: 0).
    """
    if not width:
        return filters
    scaled = filters * width
    new = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if new < round_limit * scaled:
        new += divisor
    return int(new)


def round_repeats(repeats: int, depth: float | None) -> int:
    """Layers after depth scaling: ``ceil(depth * repeats)`` (official code)."""
    if not depth:
        return repeats
    return int(math.ceil(depth * repeats))


@dataclass(frozen=True)
class Multipliers:
    """Width, depth and resolution multipliers; ``flops_ratio`` is what they cost."""

    width: float = 1.0
    depth: float = 1.0
    resolution: float = 1.0

    def __post_init__(self) -> None:
        for dimension in ("width", "depth", "resolution"):
            value = getattr(self, dimension)
            if not (math.isfinite(value) and 0 < value <= MAX_MULTIPLIER):
                raise SpecError(f"{dimension} multiplier {value:g} is out of range: it must be > 0 and at most "
                                f"{MAX_MULTIPLIER:g} (B7 is width 2.0, depth 3.1)")

    @property
    def flops_ratio(self) -> float:
        """FLOPS grow with depth, width squared and resolution squared (paper eq. 3)."""
        return self.depth * self.width**2 * self.resolution**2


def check_constraint(alpha: float, beta: float, gamma: float,
                     tolerance: float = DEFAULT_CONSTRAINT_TOLERANCE) -> float:
    """Check ``alpha * beta^2 * gamma^2 ~= 2`` and each >= 1; return the product.

    The paper's own triple gives 1.92, so the default tolerance is 0.1 (5%).
    """
    for name, value in (("alpha", alpha), ("beta", beta), ("gamma", gamma)):
        if not value >= 1:
            raise SpecError(f"{name} must be >= 1 (paper eq. 3), got {value}")
    product = alpha * beta**2 * gamma**2
    if abs(product - 2.0) > tolerance:
        raise SpecError(
            f"alpha * beta^2 * gamma^2 = {product:.4f}, but compound scaling needs it "
            f"within {tolerance} of 2 so that FLOPS grow by about 2^phi"
        )
    return product


def compound_coefficients(phi: float, alpha: float = ALPHA, beta: float = BETA,
                          gamma: float = GAMMA, *,
                          tolerance: float | None = DEFAULT_CONSTRAINT_TOLERANCE) -> Multipliers:
    """The paper's compound rule: depth alpha^phi, width beta^phi, resolution gamma^phi.

    Pass ``tolerance=None`` to skip the constraint check (for single-dimension studies).
    """
    if tolerance is not None:
        check_constraint(alpha, beta, gamma, tolerance)
    try:
        width, depth, resolution = beta**phi, alpha**phi, gamma**phi
    except OverflowError:
        width = depth = resolution = math.inf
    if not all(math.isfinite(m) and 0 < m <= MAX_MULTIPLIER for m in (width, depth, resolution)):
        raise SpecError(f"phi={phi:g} is out of range: it would scale depth by {alpha:g}^{phi:g}; every multiplier "
                        f"must stay within {MAX_MULTIPLIER:g}x (B7 is phi ~6)")
    return Multipliers(width=width, depth=depth, resolution=resolution)


def scale(spec: NetworkSpec, width: float = 1.0, depth: float = 1.0,
          resolution: int | None = None, *, name: str | None = None,
          dropout: float | None = None) -> NetworkSpec:
    """Scale a network: channels by ``round_filters``, repeats by ``round_repeats``.

    ``resolution`` is the new input size in pixels (default: unchanged). Parts that the
    spec's :class:`~effnet.spec.ScalingPolicy` fixes are left alone.
    """
    if not 0 < width <= MAX_MULTIPLIER or not 0 < depth <= MAX_MULTIPLIER:
        raise SpecError(f"width and depth multipliers must be > 0 and at most {MAX_MULTIPLIER:g}, got {width}, {depth}")
    policy = spec.scaling_policy

    def filters(channels: int) -> int:
        return round_filters(channels, width, round_limit=policy.round_limit)

    stem = spec.stem if policy.fixed_stem else replace(spec.stem, channels=filters(spec.stem.channels))
    stages: list[StageSpec] = []
    previous = stem.channels
    for i, stage in enumerate(spec.stages):
        repeats = stage.repeats if policy.depth_fixed(i, len(spec.stages)) else round_repeats(stage.repeats, depth)
        out = filters(stage.out_channels)
        stages.append(replace(stage, repeats=repeats, in_channels=previous, out_channels=out))
        previous = out
    head = spec.head
    if head.channels and not policy.fixed_head:
        head = HeadSpec(channels=filters(head.channels))
    return replace(
        spec,
        name=name or f"{spec.name}_w{width:g}_d{depth:g}" + (f"_r{resolution}" if resolution else ""),
        stem=stem,
        stages=tuple(stages),
        head=head,
        resolution=resolution or spec.resolution,
        dropout=spec.dropout if dropout is None else dropout,
    )


def scale_by(spec: NetworkSpec, multipliers: Multipliers, *, name: str | None = None) -> NetworkSpec:
    """Scale by multipliers; the resolution multiplier applies to ``spec.resolution``."""
    return scale(spec, multipliers.width, multipliers.depth,
                 scaled_resolution(spec.resolution, multipliers.resolution), name=name)


def compound_scale(spec: NetworkSpec, phi: float, alpha: float = ALPHA, beta: float = BETA,
                   gamma: float = GAMMA, *, name: str | None = None) -> NetworkSpec:
    """Paper section 3.3 applied to any baseline spec."""
    multipliers = compound_coefficients(phi, alpha, beta, gamma)
    return scale_by(spec, multipliers, name=name or f"{spec.name}_phi{phi:g}")


def scaled_resolution(base: int, multiplier: float) -> int:
    return max(1, int(round(base * multiplier)))


__all__ = [
    "ALPHA", "BETA", "GAMMA", "MAX_MULTIPLIER", "Multipliers", "check_constraint", "compound_coefficients",
    "compound_scale", "round_filters", "round_repeats", "scale", "scale_by", "scaled_resolution",
]

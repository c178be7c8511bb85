"""Single-dimension scaling at matched cost: solve for the one multiplier (width, depth or
resolution) that gives a network the same multiply-adds as a compound-scaled one.

Cost is a non-decreasing step function of each multiplier (channels round to multiples of 8,
repeats round up, resolution is whole pixels), so bisection finds the step where it crosses
the target and the closer of the two neighbouring steps wins.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..counting import count
from ..scaling import scale, scaled_resolution
from ..spec import NetworkSpec, SpecError

DIMENSIONS = ("width", "depth", "resolution")


@dataclass(frozen=True)
class Match:
    dimension: str
    multiplier: float
    spec: NetworkSpec
    madds: int
    target: int

    @property
    def relative_error(self) -> float:
        return self.madds / self.target - 1


def scale_one(base: NetworkSpec, dimension: str, multiplier: float, name: str | None = None) -> NetworkSpec:
    """Scale a single dimension; resolution is rounded to whole pixels."""
    if dimension == "width":
        return scale(base, width=multiplier, name=name)
    if dimension == "depth":
        return scale(base, depth=multiplier, name=name)
    if dimension == "resolution":
        return scale(base, resolution=scaled_resolution(base.resolution, multiplier), name=name)
    raise SpecError(f"dimension {dimension!r} is unknown; choose one of {DIMENSIONS}")


def match_madds(base: NetworkSpec, target: int, dimension: str, *, upper: float = 64.0,
                iterations: int = 60) -> Match:
    """The multiplier >= 1 of ``dimension`` whose scaled network's MAdds are closest to ``target``."""
    def madds(m: float) -> int:
        return count(scale_one(base, dimension, m)).madds

    low = 1.0
    if madds(low) >= target:
        return _match(base, dimension, low, target)
    high = 2.0
    while madds(high) < target:
        high *= 2
        if high > upper:
            raise SpecError(f"scaling {dimension} of {base.name} by up to {upper} does not reach {target:,} MAdds")
    if dimension == "resolution":  # whole pixels: bisect on the integer resolution
        lo, hi = base.resolution, max(base.resolution + 1, scaled_resolution(base.resolution, high))
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if madds(mid / base.resolution) >= target:
                hi = mid
            else:
                lo = mid
        candidates = [lo / base.resolution, hi / base.resolution]
    else:
        for _ in range(iterations):
            mid = (low + high) / 2
            if madds(mid) >= target:
                high = mid
            else:
                low = mid
        candidates = [low, high]
    best = min(candidates, key=lambda m: (abs(madds(m) - target), m))
    return _match(base, dimension, best, target)


def _match(base: NetworkSpec, dimension: str, multiplier: float, target: int) -> Match:
    name = f"{base.name}_{dimension}{multiplier:.3f}"
    spec = scale_one(base, dimension, multiplier, name=name)
    return Match(dimension, multiplier, spec, count(spec).madds, target)

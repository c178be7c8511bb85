"""The paper's Figure 4: width scaling of the baseline under different depth and resolution.
Scaling width with larger depth and resolution reaches higher accuracy at the same FLOPS:
the observation that motivates compound scaling (section 3.2)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..scaling import Multipliers, scale_by
from ..spec import NetworkSpec, SpecError
from .report import Point
from .trials import Budget, Trial

# The paper's four curves: (depth, resolution) = (1, 1), (2, 1), (1, 1.3), (2, 1.3).
CONFIGS = ((1.0, 1.0), (2.0, 1.0), (1.0, 1.3), (2.0, 1.3))
# Width multipliers along each curve (the paper's Figure 4 runs w from 1 to 2.6).
WIDTHS = (1.0, 1.4, 1.8, 2.2, 2.6)


def curve_label(depth: float, resolution: float) -> str:
    return f"d={depth:g}, r={resolution:g}"


def width_grid_trials(base: NetworkSpec, budget: Budget, seeds: Sequence[int] = (0, 1),
                      widths: Sequence[float] = WIDTHS, configs: Sequence[tuple[float, float]] = CONFIGS,
                      **trial_fields) -> list[Trial]:
    """One trial per (depth, resolution) curve, width and seed."""
    if not widths or not configs or min(widths) <= 0 or min(min(c) for c in configs) <= 0:
        raise SpecError(f"width-grid needs positive widths and (depth, resolution) pairs, got {widths}, {configs}")
    trials = []
    for depth, resolution in configs:
        for width in widths:
            spec = scale_by(base, Multipliers(width=width, depth=depth, resolution=resolution),
                            name=f"{base.name}_w{width:g}_d{depth:g}_r{resolution:g}")
            for seed in seeds:
                trials.append(Trial("width_grid", curve_label(depth, resolution), spec, budget, seed,
                                    labels=(("width", float(width)), ("depth", float(depth)),
                                            ("resolution", float(resolution))), **trial_fields))
    return trials


def accuracy_at(curve: Sequence[Point], madds: float) -> float | None:
    """A curve's mean top-1 at ``madds``, linear in log MAdds between its two nearest points
    (Figure 4's axis); None outside the MAdds the curve spans."""
    series = sorted(curve, key=lambda p: p.madds)
    if not series or not series[0].madds <= madds <= series[-1].madds:
        return None
    return float(np.interp(math.log(madds), [math.log(p.madds) for p in series], [p.mean for p in series]))


def at_equal_madds(points: Sequence[Point]) -> list[dict[str, float]]:
    """Figure 4 read at equal cost: at every measured MAdds that all curves span, each curve's
    top-1 there (its own point or interpolated between two), cheapest first."""
    curves: dict[str, list[Point]] = {}
    for p in points:
        curves.setdefault(p.method, []).append(p)
    if not curves:
        return []
    low = max(min(p.madds for p in c) for c in curves.values())
    high = min(max(p.madds for p in c) for c in curves.values())
    costs = sorted({p.madds for p in points if low <= p.madds <= high})
    return [{"madds": float(m)} | {label: accuracy_at(c, m) for label, c in curves.items()} for m in costs]

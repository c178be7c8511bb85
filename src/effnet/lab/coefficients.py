"""Step 1 of the paper (section 3.3): fix phi = 1 and grid-search alpha, beta, gamma >= 1
under alpha * beta^2 * gamma^2 ~= 2."""

from __future__ import annotations

from collections.abc import Sequence

from ..scaling import Multipliers, scale_by
from ..spec import NetworkSpec, SpecError
from .trials import Budget, Trial


def constraint_grid(step: float = 0.05, tolerance: float = 0.05, target: float = 2.0,
                    maximum: float = 2.0) -> list[tuple[float, float, float]]:
    """All (alpha, beta, gamma) on a ``step`` grid from 1 with |alpha*beta^2*gamma^2 - target| <= tolerance."""
    if step <= 0 or tolerance < 0:
        raise SpecError(f"step must be > 0 and tolerance >= 0, got {step}, {tolerance}")
    n = int(round((maximum - 1) / step))
    values = [round(1 + i * step, 10) for i in range(n + 1)]
    return [(a, b, g) for a in values for b in values for g in values
            if abs(a * b * b * g * g - target) <= tolerance + 1e-12]


def coefficient_trials(base: NetworkSpec, grid: Sequence[tuple[float, float, float]], budget: Budget,
                       seeds: Sequence[int] = (0,), **trial_fields) -> list[Trial]:
    """One trial per grid point and seed: the base scaled by depth alpha, width beta,
    resolution gamma (phi = 1)."""
    trials = []
    for alpha, beta, gamma in grid:
        spec = scale_by(base, Multipliers(width=beta, depth=alpha, resolution=gamma),
                        name=f"{base.name}_a{alpha:g}_b{beta:g}_g{gamma:g}")
        for seed in seeds:
            trials.append(Trial("coefficients", "grid", spec, budget, seed,
                                labels=(("alpha", alpha), ("beta", beta), ("gamma", gamma)), **trial_fields))
    return trials

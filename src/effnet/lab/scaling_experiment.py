"""Step 2 of the paper and its control: scale a baseline by phi = 1..N with the compound rule,
and by width, depth or resolution alone at the same multiply-adds (the shape of the paper's
Figures 3 and 8 and Table 3)."""

from __future__ import annotations

from collections.abc import Sequence

from ..counting import count
from ..scaling import ALPHA, BETA, GAMMA, compound_coefficients, scale_by
from ..spec import NetworkSpec
from .matching import DIMENSIONS, match_madds
from .trials import Budget, Trial

METHODS = ("compound", *DIMENSIONS)


def scaling_trials(base: NetworkSpec, phis: Sequence[float], budget: Budget, seeds: Sequence[int] = (0, 1, 2),
                   coefficients: tuple[float, float, float] = (ALPHA, BETA, GAMMA),
                   methods: Sequence[str] = METHODS, **trial_fields) -> list[Trial]:
    """The base (phi = 0), then for each phi the compound network and the single-dimension
    networks (all three by default, or those in ``methods``) whose MAdds match it."""
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise ValueError(f"unknown scaling methods {unknown}; choose from {', '.join(METHODS)}")
    alpha, beta, gamma = coefficients
    trials = [Trial("scaling", "base", base, budget, seed, labels=(("phi", 0.0), ("multiplier", 1.0)), **trial_fields)
              for seed in seeds]
    for phi in phis:
        m = compound_coefficients(phi, alpha, beta, gamma, tolerance=None)
        compound = scale_by(base, m, name=f"{base.name}_phi{phi:g}")
        target = count(compound).madds
        networks = [("compound", compound, m.flops_ratio)] if "compound" in methods else []
        for dimension in (d for d in DIMENSIONS if d in methods):
            match = match_madds(base, target, dimension)
            networks.append((dimension, match.spec, match.multiplier))
        for method, spec, multiplier in networks:
            for seed in seeds:
                trials.append(Trial("scaling", method, spec, budget, seed,
                                    labels=(("phi", float(phi)), ("multiplier", float(multiplier))), **trial_fields))
    return trials

"""Multi-objective rewards: accuracy traded against cost (MAdds or latency) around a target.

- MnasNet (Tan et al., 2019, eq. 2): ``ACC x (COST / T)^w`` with ``w = alpha`` when
  ``COST <= T`` and ``beta`` otherwise. Soft: ``alpha = beta = -0.07`` (the paper's default,
  and EfficientNet's search with MAdds, T = 400M); hard: ``alpha = 0, beta = -1``.
- TuNAS (Bender et al., 2020) absolute reward: ``ACC + beta x |COST / T - 1|``, which pulls the
  cost to the target from both sides. ``beta = -0.07`` here is our default, chosen to match the
  soft reward's strength near T; TuNAS tunes it per search.

ACC is a fraction (0..1). A failed or invalid candidate gets reward 0.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

SOFT_EXPONENT = -0.07
ABS_BETA = -0.07


@dataclass(frozen=True)
class Reward:
    kind: str = "soft"              # soft | hard | abs
    target: float = 400e6           # T, in the unit of the cost
    alpha: float | None = None      # exponent below the target (soft/hard); None: the kind's default
    beta: float | None = None       # exponent above (soft/hard), or the abs coefficient

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown reward {self.kind!r}; choose one of {', '.join(KINDS)}")
        if not self.target > 0:
            raise ValueError(f"the cost target must be positive, got {self.target}")

    def __call__(self, accuracy: float | None, cost: float | None) -> float:
        if accuracy is None or cost is None or cost <= 0:
            return 0.0
        return KINDS[self.kind](accuracy, cost, self)


def _mnas(default_alpha: float, default_beta: float) -> Callable[[float, float, Reward], float]:
    def reward(accuracy: float, cost: float, r: Reward) -> float:
        alpha = default_alpha if r.alpha is None else r.alpha
        beta = default_beta if r.beta is None else r.beta
        return accuracy * (cost / r.target) ** (alpha if cost <= r.target else beta)
    return reward


def _abs(accuracy: float, cost: float, r: Reward) -> float:
    return accuracy + (ABS_BETA if r.beta is None else r.beta) * abs(cost / r.target - 1)


KINDS: dict[str, Callable[[float, float, Reward], float]] = {
    "soft": _mnas(SOFT_EXPONENT, SOFT_EXPONENT),
    "hard": _mnas(0.0, -1.0),
    "abs": _abs,
}

"""Search strategies behind one ask/tell interface, each with a ``state_dict`` so a search
resumes exactly where it stopped.

- :class:`RandomSearch`: uniform over the space; the baseline every claim is measured against.
- :class:`RegularizedEvolution` (Real et al., 2019): tournament of ``sample`` from a
  ``population``, the best parent's child differs in one token, the oldest member dies
  (aging). Defaults P = 20, S = 5: NNI's 100/25 are for thousands of evaluations, and a few
  hundred want a smaller population (docs/search.md).
- :class:`ControllerSearch` (``effnet.search.controller``): MnasNet's RNN controller, trained
  with PPO (the paper) or REINFORCE (an ablation on the same controller), with settings tuned
  for a few hundred evaluations.

``ask(n)`` returns candidates (an id and the tokens); ``tell(id, reward)`` reports one. All
randomness comes from the strategy's own generator, saved in its state.
"""

from __future__ import annotations

import collections
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Candidate:
    id: int
    tokens: tuple[int, ...]


class Strategy(ABC):
    """The interface; subclasses implement ``_propose`` (or ``ask``) and may override ``_learn``."""

    name = "strategy"
    # How many candidates the strategy wants per round (PPO updates on whole batches).
    batch_size = 1

    def __init__(self, sizes: Sequence[int], seed: int = 0) -> None:
        if not sizes or min(sizes) < 1:
            raise ValueError(f"a search space needs at least one token with at least one choice, got {list(sizes)}")
        self.sizes = tuple(int(n) for n in sizes)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.next_id = 0
        self.pending: dict[int, tuple[int, ...]] = {}
        self.told = 0

    def ask(self, n: int = 1) -> list[Candidate]:
        out = []
        for _ in range(n):
            tokens = self._propose()
            candidate = Candidate(self.next_id, tokens)
            self.pending[candidate.id] = tokens
            self.next_id += 1
            out.append(candidate)
        return out

    def tell(self, candidate_id: int, reward: float) -> None:
        self._learn(self.pending.pop(candidate_id), float(reward))
        self.told += 1

    @abstractmethod
    def _propose(self) -> tuple[int, ...]:
        """The next candidate's tokens."""

    def _learn(self, tokens: tuple[int, ...], reward: float) -> None:  # noqa: B027 - optional hook
        """Learn from one result (random search learns nothing)."""

    @property
    def settings(self) -> dict[str, float]:
        """The strategy's hyperparameters (recorded beside a benchmark's results)."""
        return {}

    def random_tokens(self) -> tuple[int, ...]:
        return tuple(int(self.rng.integers(n)) for n in self.sizes)

    # -- state ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"name": self.name, "sizes": list(self.sizes), "seed": self.seed, "rng": self.rng.bit_generator.state,
                "next_id": self.next_id, "told": self.told,
                "pending": {str(k): list(v) for k, v in self.pending.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["name"] != self.name or tuple(state["sizes"]) != self.sizes:
            raise ValueError(f"this state is of a {state['name']} search over {len(state['sizes'])} tokens, not of "
                             f"a {self.name} search over {len(self.sizes)}; use the same --strategy and skeleton")
        self.rng.bit_generator.state = state["rng"]
        self.next_id, self.told = int(state["next_id"]), int(state["told"])
        self.pending = {int(k): tuple(v) for k, v in state["pending"].items()}


class RandomSearch(Strategy):
    name = "random"

    def _propose(self) -> tuple[int, ...]:
        return self.random_tokens()


class RegularizedEvolution(Strategy):
    name = "evolution"

    def __init__(self, sizes: Sequence[int], seed: int = 0, *, population: int = 20, sample: int = 5) -> None:
        super().__init__(sizes, seed)
        if not 1 <= sample <= population:
            raise ValueError(f"evolution needs 1 <= sample <= population, got sample {sample}, population {population}")
        self.population_size, self.sample = population, sample
        self.population: collections.deque[tuple[tuple[int, ...], float]] = collections.deque()
        self.proposed = 0

    def _propose(self) -> tuple[int, ...]:
        self.proposed += 1
        if self.proposed <= self.population_size or len(self.population) < self.sample:
            return self.random_tokens()   # the initial population, and while too few results are in
        members = [self.population[i] for i in self.rng.choice(len(self.population), self.sample, replace=False)]
        parent = max(members, key=lambda m: m[1])[0]
        return self.mutate(parent)

    @property
    def settings(self) -> dict[str, float]:
        return {"population": self.population_size, "sample": self.sample}

    def mutate(self, tokens: tuple[int, ...]) -> tuple[int, ...]:
        """One token changed to another of its choices (positions with one choice are skipped)."""
        positions = [i for i, n in enumerate(self.sizes) if n > 1]
        if not positions:
            return tokens
        i = positions[int(self.rng.integers(len(positions)))]
        other = int(self.rng.integers(self.sizes[i] - 1))
        child = list(tokens)
        child[i] = other if other < tokens[i] else other + 1
        return tuple(child)

    def _learn(self, tokens: tuple[int, ...], reward: float) -> None:
        self.population.append((tokens, reward))
        if len(self.population) > self.population_size:
            self.population.popleft()     # aging: the oldest dies, not the worst

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "population": [[list(t), r] for t, r in self.population],
                "proposed": self.proposed, "population_size": self.population_size, "sample": self.sample}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.population = collections.deque((tuple(t), float(r)) for t, r in state["population"])
        self.proposed = int(state["proposed"])

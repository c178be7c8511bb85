"""A search on real data: ask the strategy, train each candidate with the laboratory's proxy
(trials in processes or on Ray, every finished one in the journal), reward, tell, repeat.

After every round the search state (the strategy's ``state_dict``, every candidate so far,
the configuration) is written atomically to ``OUT/search_state.pt``. Killed and started
again with the same command, the search restores that state, asks the same next candidates
(the strategy's generators are in the state), takes the trials that already finished from
the journal and trains only the rest: the result equals an uninterrupted run.

:class:`SearchState` is that memory for every backend: a search on Ray Tune (``search.tune``)
writes the same journal and state, so either backend continues the other's search (a Tune
search saves between trials; the candidates it had asked and not yet told are trained first).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from ..figures import new_figure, save_png
from ..atomic import write_atomic
from ..counting import count
from ..lab.experiments import LabOptions
from ..lab.journal import Journal
from ..lab.dispatch import TrialFn, run_trials
from ..lab.trials import Budget, Trial, TrialResult, train_trial
from ..spec import NetworkSpec
from ..spec_json import spec_to_dict, write_spec
from .controller import make_strategy
from .latency import cpu_latency_ms
from .latency_build import measure_networks
from .latency_parts import network_parts
from .latency_table import LatencyTable
from .rewards import Reward
from .space import decode, describe, get_skeleton
from .strategies import Candidate, Strategy

STATE = "search_state.pt"
BEST = "best.json"
MEASURED_BEST = 5  # candidates whose predicted latency is checked against the runtime at the end


@dataclass(frozen=True)
class SearchConfig:
    skeleton: str = "fmnist"
    strategy: str = "evolution"
    reward: str = "soft"
    cost: str = "madds"              # madds (the EfficientNet search) | latency (MnasNet: ms)
    target: float = 0.0              # T in the cost's unit; 0: the skeleton's reference network's cost
    # With cost latency: the table that predicts ms in a deployed runtime (``effnet nas latency-table``);
    # without one, eager PyTorch on this CPU is timed for every candidate.
    latency_table: str = ""
    allow_foreign_table: bool = False
    evaluations: int = 100
    seed: int = 0                    # the strategy's and every trial's seed
    # The controller's settings (ppo, reinforce); None: the tuned defaults (search/controller.py).
    controller_lr: float | None = None
    entropy_weight: float | None = None
    controller_batch: int | None = None

    def __post_init__(self) -> None:
        if self.cost not in ("madds", "latency"):
            raise ValueError(f"cost must be madds or latency, got {self.cost!r}")
        if self.evaluations < 1:
            raise ValueError(f"evaluations must be at least 1, got {self.evaluations}")
        if self.latency_table and self.cost != "latency":
            raise ValueError("a latency table is the cost of --cost latency; add --cost latency or drop the table")
        if self.strategy not in ("ppo", "reinforce") and self.controller_settings:
            raise ValueError(f"controller settings apply to the ppo and reinforce strategies, not {self.strategy}")

    @property
    def controller_settings(self) -> dict[str, float]:
        given = {"lr": self.controller_lr, "entropy_weight": self.entropy_weight, "batch_size": self.controller_batch}
        return {key: value for key, value in given.items() if value is not None}

    def new_strategy(self, sizes: Sequence[int]) -> Strategy:
        return make_strategy(self.strategy, sizes, self.seed, **self.controller_settings)

    def same_search(self, saved: dict[str, Any]) -> bool:
        """Whether a saved config is this search's. The controller's settings are checked against
        the restored strategy instead: a state may predate their being part of the config."""
        ignored = (*_CONTROLLER_FIELDS, "allow_foreign_table")
        saved = {**asdict(SearchConfig()), **saved}  # a state written before a setting existed had its default
        return ({k: v for k, v in asdict(self).items() if k not in ignored}
                == {k: v for k, v in saved.items() if k not in ignored})


_CONTROLLER_FIELDS = ("controller_lr", "entropy_weight", "controller_batch")


def load_table(config: SearchConfig) -> LatencyTable | None:
    """A latency search's table (refused on another CPU unless allowed), else None."""
    if not config.latency_table:
        return None
    return LatencyTable.load(config.latency_table, allow_foreign=config.allow_foreign_table)


def cost_function(config: SearchConfig, table: LatencyTable | None = None) -> Callable[[NetworkSpec], float]:
    """The search's cost of a network: MAdds, the latency table's prediction (``table``, or the
    config's loaded), or eager ms here."""
    if config.cost == "madds":
        return lambda spec: float(count(spec).madds)
    if config.latency_table:
        return (table or load_table(config)).predict_ms  # type: ignore[union-attr]
    return cpu_latency_ms


def default_target(config: SearchConfig, cost: Callable[[NetworkSpec], float] | None = None) -> float:
    """The reference network's own cost: the search looks for better networks of its size
    (for the B0 skeleton with MAdds this is B0's 386M, near the paper's T = 400M)."""
    return config.target or (cost or cost_function(config))(get_skeleton(config.skeleton).reference)


class SearchState:
    """What a search keeps in OUT whichever backend trains its candidates (processes, Ray tasks
    or Ray Tune): the lab's journal of trials, ``search_state.pt`` (the settings, the strategy's
    state, every candidate told so far) and ``candidates.jsonl``; at the end ``summary.json``,
    ``best.json`` and the plot. ``effnet nas retrain`` and ``effnet nas proxy-check`` read these."""

    def __init__(self, out: str | os.PathLike[str], config: SearchConfig, budget: Budget,
                 data_dir: str | None = None) -> None:
        self.out, self.config, self.budget, self.data_dir = Path(out), config, budget, data_dir
        self.skeleton = get_skeleton(config.skeleton)
        self.table = load_table(config)
        self.cost = cost_function(config, self.table)
        self.target = default_target(config, self.cost)
        self.reward = Reward(config.reward, self.target)
        self.journal = Journal(self.out / "journal.jsonl")
        self.records: list[dict[str, Any]] = []

    def resume(self, strategy: Strategy) -> list[Candidate]:
        """Load the saved state into ``strategy`` and the records; returns the candidates asked
        but not told when it was saved (a Tune search saves between trials), to train first.
        A state of other settings is refused."""
        path = self.out / STATE
        if not path.exists():
            return []
        state = torch.load(path, weights_only=True)
        if not self.config.same_search(state["config"]) or state["budget"] != asdict(self.budget):
            raise ValueError(f"{self.out} holds a search with other settings ({state['config']}, {state['budget']}); "
                             "use another --out, or the same settings to resume it")
        strategy.load_state_dict(state["strategy"])
        restored = getattr(strategy, "settings", {})
        differ = {k: (v, restored[k]) for k, v in self.config.controller_settings.items() if restored.get(k) != v}
        if differ:
            raise ValueError(f"{self.out} holds a search whose controller has other settings "
                             f"({', '.join(f'{k} {old} there, {new} asked' for k, (new, old) in differ.items())}); "
                             "use another --out, or the same settings to resume it")
        self.records = state["records"]
        return [Candidate(i, tokens) for i, tokens in sorted(strategy.pending.items())]

    def trial(self, tokens: Sequence[int]) -> Trial:
        return Trial("search", self.config.strategy, decode(self.skeleton, tokens), self.budget, self.config.seed,
                     data_dir=self.data_dir, run_dir=str(self.out / "trials"), labels=(("tokens", list(tokens)),))

    def score(self, trial: Trial, result: TrialResult) -> tuple[float | None, float]:
        """The candidate's cost (None if its training failed) and reward."""
        cost = self.cost(trial.spec) if result.top1 is not None else None
        return cost, self.reward(None if result.top1 is None else result.top1 / 100, cost)

    def add(self, candidate: Candidate, result: TrialResult, cost: float | None, reward: float) -> None:
        self.records.append({"evaluation": len(self.records) + 1, "id": candidate.id, "tokens": list(candidate.tokens),
                             "key": result.key, "top1": result.top1, "cost": cost, "madds": result.madds,
                             "params": result.params, "reward": reward, "seconds": result.wall_s,
                             "seed": self.config.seed, "error": result.error})

    def save(self, strategy: Strategy) -> None:
        _save(self.out / STATE, {"config": asdict(self.config), "budget": asdict(self.budget),
                                 "strategy": strategy.state_dict(), "records": self.records})
        write_candidates(self.out, self.records, self.skeleton)

    def summarise(self) -> dict[str, Any]:
        extra = {"measured_latency": self.measure_best()} if self.config.latency_table else {}
        return summarise(self.out, self.config, self.budget, self.target, self.records, self.skeleton, extra)

    def measure_best(self, top: int = MEASURED_BEST) -> list[dict[str, Any]]:
        """The best distinct candidates by reward (and the hand base) exported whole and timed in
        the latency table's runtime: what the table predicted beside what the runtime does."""
        table = self.table
        assert table is not None, "measure_best is for a search with a latency table"
        chosen: dict[str, dict[str, Any]] = {}  # by architecture: tokens that differ only where they do
        for record in sorted((r for r in self.records if r["top1"] is not None), key=lambda r: -r["reward"]):
            pieces = network_parts(decode(self.skeleton, record["tokens"]))  # not matter (a skip on a strided
            chosen.setdefault("|".join(p.key for p in pieces), record)        # block) are one network
        best = list(chosen.values())[:top]
        specs = [self.skeleton.reference, *(decode(self.skeleton, r["tokens"]) for r in best)]
        measured = measure_networks(table.target, specs, self.out / "measured_latency", progress=False)
        rows = [{"network": "base", "tokens": None, "predicted_ms": table.predict_ms(specs[0]), "measured_ms": measured[0]}]
        return rows + [{"network": f"evaluation {r['evaluation']}", "tokens": r["tokens"], "reward": r["reward"],
                        "top1": r["top1"], "predicted_ms": r["cost"], "measured_ms": ms} for r, ms in zip(best, measured[1:])]


def run_search(config: SearchConfig, budget: Budget, options: LabOptions, *, round_size: int = 0,
               trial_fn: TrialFn = train_trial) -> dict[str, Any]:
    """Run (or resume) a search; returns its summary (also in ``OUT/summary.json``)."""
    search = SearchState(options.out_dir, config, budget, options.data_dir)
    strategy = config.new_strategy(search.skeleton.sizes)
    waiting = search.resume(strategy)
    # A round is what the strategy learns from at once (PPO's batch), at least one trial per worker.
    size = round_size or max(strategy.batch_size, options.workers)
    while len(search.records) < config.evaluations:
        wanted = min(size, config.evaluations - len(search.records))
        candidates, waiting = waiting[:wanted], waiting[wanted:]
        if len(candidates) < wanted:
            candidates += strategy.ask(wanted - len(candidates))
        trials = [search.trial(c.tokens) for c in candidates]
        results = run_trials(trials, search.journal, workers=options.workers, backend=options.backend,
                             ray_address=options.ray_address, trial_fn=trial_fn, progress=options.progress,
                             description=f"{config.strategy} round {len(search.records) // size + 1}")
        for candidate, trial, result in zip(candidates, trials, results):
            cost, value = search.score(trial, result)
            strategy.tell(candidate.id, value)
            search.add(candidate, result, cost, value)
        search.save(strategy)
    return search.summarise()


def _save(path: Path, state: dict[str, Any]) -> None:
    """Atomically: a kill leaves the last round's state or this one, never half of one."""
    write_atomic(path, lambda partial: torch.save(state, partial))


def write_candidates(out: Path, records: list[dict[str, Any]], skeleton) -> None:  # type: ignore[no-untyped-def]
    lines = [json.dumps({**record, "network": describe(skeleton, record["tokens"]),
                         "spec": spec_to_dict(decode(skeleton, record["tokens"]))}) + "\n" for record in records]
    write_atomic(out / "candidates.jsonl", "".join(lines))


def summarise(out: Path, config: SearchConfig, budget: Budget, target: float, records: list[dict[str, Any]],
              skeleton, extra: dict[str, Any] | None = None) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    best = max(records, key=lambda r: r["reward"])
    seen, best_so_far, running = set(), [], float("-inf")
    for r in records:
        running = max(running, r["reward"])
        best_so_far.append(running)
        seen.add(r["key"])
    summary = {"config": asdict(config), "budget": asdict(budget), "target": target, "evaluations": len(records),
               "unique_networks": len(seen), "failed": sum(r["top1"] is None for r in records),
               "best": {**best, "network": describe(skeleton, best["tokens"])}, "best_so_far": best_so_far, **(extra or {})}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    # The found network, readable by `effnet show`, create_model, `effnet train model.spec=` and the lab.
    found = decode(skeleton, best["tokens"]).replace(name=f"searched_{config.skeleton}_{config.strategy}_s{config.seed}")
    write_spec(found, out / BEST, search={"strategy": config.strategy, "reward": config.reward, "target": target,
                                          "evaluation": best["evaluation"], "proxy_top1": best["top1"],
                                          "reward_value": best["reward"], "tokens": best["tokens"],
                                          "network": describe(skeleton, best["tokens"])})
    _plot(out / "search.png", records, target, config)
    return summary


def _plot(path: Path, records: list[dict[str, Any]], target: float, config: SearchConfig) -> None:
    fig = new_figure(10, 4.2)
    left, right = fig.subplots(1, 2)
    done = [r for r in records if r["top1"] is not None]
    points = left.scatter([r["cost"] for r in done], [r["top1"] for r in done], c=[r["evaluation"] for r in done],
                          cmap="viridis", s=18)
    left.axvline(target, color="gray", linestyle=":", label="target T")
    runtime = "predicted by the latency table" if config.latency_table else "eager PyTorch, this CPU"
    left.set_xlabel("MAdds" if config.cost == "madds" else f"latency (ms, {runtime})")
    left.set_ylabel("proxy minival top-1 (%)")
    left.set_title("candidates (colour: order sampled)", fontsize=10)
    fig.colorbar(points, ax=left)
    left.legend()
    running, curve = float("-inf"), []
    for r in records:
        running = max(running, r["reward"])
        curve.append(running)
    right.plot(range(1, len(curve) + 1), curve)
    right.set_xlabel("evaluations")
    right.set_ylabel(f"best {config.reward} reward so far")
    right.set_title(f"{config.strategy} on the {config.skeleton} skeleton", fontsize=10)
    right.grid(alpha=0.3)
    save_png(fig, path)

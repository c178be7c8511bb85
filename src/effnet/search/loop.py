"""A search on real data: ask the strategy, train each candidate with the laboratory's proxy
(trials in processes or on Ray, every finished one in the journal), reward, tell, repeat.

After every round the search state (the strategy's ``state_dict``, every candidate so far,
the configuration) is written atomically to ``OUT/search_state.pt``. Killed and started
again with the same command, the search restores that state, asks the same next candidates
(the strategy's generators are in the state), takes the trials that already finished from
the journal and trains only the rest: the result equals an uninterrupted run.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from matplotlib.figure import Figure

from ..counting import count
from ..lab.experiments import RunOptions
from ..lab.journal import Journal
from ..lab.runner import TrialFn, run_trials
from ..lab.trials import Budget, Trial, train_trial
from ..spec_json import spec_to_dict, write_spec
from .controller import make_strategy
from .latency import cpu_latency_ms
from .rewards import Reward
from .space import decode, describe, get_skeleton

STATE = "search_state.pt"
BEST = "best.json"


@dataclass(frozen=True)
class SearchConfig:
    skeleton: str = "fmnist"
    strategy: str = "evolution"
    reward: str = "soft"
    cost: str = "madds"              # madds (the EfficientNet search) | latency (MnasNet: ms on this CPU)
    target: float = 0.0              # T in the cost's unit; 0: the skeleton's reference network's cost
    evaluations: int = 100
    seed: int = 0                    # the strategy's and every trial's seed

    def __post_init__(self) -> None:
        if self.cost not in ("madds", "latency"):
            raise ValueError(f"cost must be madds or latency, got {self.cost!r}")
        if self.evaluations < 1:
            raise ValueError(f"evaluations must be at least 1, got {self.evaluations}")


def cost_of(spec, cost: str) -> float:  # type: ignore[no-untyped-def]
    return float(count(spec).madds) if cost == "madds" else cpu_latency_ms(spec)


def default_target(config: SearchConfig) -> float:
    """The reference network's own cost: the search looks for better networks of its size
    (for the B0 skeleton with MAdds this is B0's 386M, near the paper's T = 400M)."""
    return config.target or cost_of(get_skeleton(config.skeleton).reference, config.cost)


def run_search(config: SearchConfig, budget: Budget, options: RunOptions, *, round_size: int = 0,
               trial_fn: TrialFn = train_trial) -> dict[str, Any]:
    """Run (or resume) a search; returns its summary (also in ``OUT/summary.json``)."""
    out = Path(options.out_dir)
    skeleton = get_skeleton(config.skeleton)
    strategy = make_strategy(config.strategy, skeleton.sizes, config.seed)
    target = default_target(config)
    reward = Reward(config.reward, target)
    records: list[dict[str, Any]] = []
    state_path = out / STATE
    if state_path.exists():
        state = torch.load(state_path, weights_only=True)
        if state["config"] != asdict(config) or state["budget"] != asdict(budget):
            raise ValueError(f"{out} holds a search with other settings ({state['config']}, {state['budget']}); "
                             "use another --out, or the same settings to resume it")
        strategy.load_state_dict(state["strategy"])
        records = state["records"]
    journal = Journal(out / "journal.jsonl")
    # A round is what the strategy learns from at once (PPO's batch), at least one trial per worker.
    size = round_size or max(strategy.batch_size, options.workers)
    while len(records) < config.evaluations:
        candidates = strategy.ask(min(size, config.evaluations - len(records)))
        trials = [Trial("search", config.strategy, decode(skeleton, c.tokens), budget, config.seed,
                        data_dir=options.data_dir, run_dir=str(out / "trials"),
                        labels=(("tokens", list(c.tokens)),)) for c in candidates]
        results = run_trials(trials, journal, workers=options.workers, backend=options.backend,
                             ray_address=options.ray_address, trial_fn=trial_fn, progress=options.progress,
                             description=f"{config.strategy} round {len(records) // size + 1}")
        for candidate, trial, result in zip(candidates, trials, results):
            cost = cost_of(trial.spec, config.cost) if result.top1 is not None else None
            value = reward(None if result.top1 is None else result.top1 / 100, cost)
            strategy.tell(candidate.id, value)
            records.append({"evaluation": len(records) + 1, "id": candidate.id, "tokens": list(candidate.tokens),
                            "key": result.key, "top1": result.top1, "cost": cost, "madds": result.madds,
                            "params": result.params, "reward": value, "seconds": result.wall_s, "seed": config.seed,
                            "error": result.error})
        _save(state_path, {"config": asdict(config), "budget": asdict(budget), "strategy": strategy.state_dict(),
                           "records": records})
        write_candidates(out, records, skeleton)
    return summarise(out, config, budget, target, records, skeleton)


def _save(path: Path, state: dict[str, Any]) -> None:
    """Atomically: a kill leaves the last round's state or this one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    torch.save(state, partial)
    with open(partial, "rb") as f:
        os.fsync(f.fileno())
    os.replace(partial, path)


def write_candidates(out: Path, records: list[dict[str, Any]], skeleton) -> None:  # type: ignore[no-untyped-def]
    partial = out / ".candidates.jsonl.partial"
    with partial.open("w") as f:
        for record in records:
            spec = decode(skeleton, record["tokens"])
            f.write(json.dumps({**record, "network": describe(skeleton, record["tokens"]),
                                "spec": spec_to_dict(spec)}) + "\n")
    os.replace(partial, out / "candidates.jsonl")


def summarise(out: Path, config: SearchConfig, budget: Budget, target: float, records: list[dict[str, Any]],
               skeleton) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    best = max(records, key=lambda r: r["reward"])
    seen, best_so_far, running = set(), [], float("-inf")
    for r in records:
        running = max(running, r["reward"])
        best_so_far.append(running)
        seen.add(r["key"])
    summary = {"config": asdict(config), "budget": asdict(budget), "target": target, "evaluations": len(records),
               "unique_networks": len(seen), "failed": sum(r["top1"] is None for r in records),
               "best": {**best, "network": describe(skeleton, best["tokens"])}, "best_so_far": best_so_far}
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
    fig = Figure(figsize=(10, 4.2))  # no pyplot: no global figure state, no GUI backend
    left, right = fig.subplots(1, 2)
    done = [r for r in records if r["top1"] is not None]
    points = left.scatter([r["cost"] for r in done], [r["top1"] for r in done], c=[r["evaluation"] for r in done],
                          cmap="viridis", s=18)
    left.axvline(target, color="gray", linestyle=":", label="target T")
    left.set_xlabel("MAdds" if config.cost == "madds" else "latency (ms, this CPU)")
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
    fig.tight_layout()
    fig.savefig(path, dpi=120)

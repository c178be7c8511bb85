"""The strategies on Ray Tune: :class:`StrategySearcher` is a Tune ``Searcher`` around any
effnet strategy. ``suggest`` hands out the strategy's candidates (a whole PPO batch is asked
at once; ``ConcurrencyLimiter(batch=True)`` holds results until the batch is done, so PPO
updates on whole batches), ``on_trial_complete`` tells it the reward, and ``save`` /
``restore`` carry the strategy's state, so ``Tuner.restore`` continues an interrupted search
instead of restarting it. ``Searcher`` is a developer API of Ray: tested against the pinned
Ray (constraints.txt).
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from ..lab.experiments import RunOptions
from ..lab.runner import TrialFn
from ..lab.trials import Budget, Trial, train_trial
from .controller import make_strategy
from .loop import SearchConfig, cost_of, default_target, summarise, write_candidates
from .rewards import Reward
from .space import decode, get_skeleton
from .strategies import Candidate, Strategy

try:  # Ray is optional (effnet[ray]); the searcher needs it, the rest of effnet does not
    from ray.tune.search import Searcher as _TuneSearcher
except ImportError:  # pragma: no cover - depends on the environment
    _TuneSearcher = object  # type: ignore[assignment,misc]


class StrategySearcher(_TuneSearcher):  # type: ignore[misc,valid-type]
    def __init__(self, strategy: Strategy, *, evaluations: int, metric: str = "reward", mode: str = "max") -> None:
        if _TuneSearcher is object:
            raise ImportError("the Ray Tune searcher needs Ray Tune: pip install 'effnet[ray]'")
        super().__init__(metric=metric, mode=mode)
        self.strategy = strategy
        self.evaluations = evaluations
        self.suggested = 0
        self.queue: list[Candidate] = []
        self.running: dict[str, int] = {}      # Tune trial id -> candidate id

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if self.suggested >= self.evaluations:
            return _TuneSearcher.FINISHED
        if not self.queue:
            self.queue = self.strategy.ask(min(self.strategy.batch_size, self.evaluations - self.suggested))
        candidate = self.queue.pop(0)
        self.running[trial_id] = candidate.id
        self.suggested += 1
        return {"tokens": list(candidate.tokens), "candidate": candidate.id}

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        candidate = self.running.pop(trial_id, None)
        if candidate is None:
            return
        value = float(result.get(self.metric, 0.0)) if result and not error else 0.0
        self.strategy.tell(candidate, value)

    def get_state(self) -> dict[str, Any]:
        return {"strategy": self.strategy.state_dict(), "suggested": self.suggested, "evaluations": self.evaluations,
                "queue": [[c.id, list(c.tokens)] for c in self.queue], "running": dict(self.running)}

    def set_state(self, state: dict[str, Any]) -> None:
        self.strategy.load_state_dict(state["strategy"])
        self.suggested, self.evaluations = int(state["suggested"]), int(state["evaluations"])
        self.queue = [Candidate(int(i), tuple(t)) for i, t in state["queue"]]
        self.running = {str(k): int(v) for k, v in state["running"].items()}

    def save(self, checkpoint_path: str) -> None:
        partial = f"{checkpoint_path}.{os.getpid()}.partial"
        torch.save(self.get_state(), partial)
        os.replace(partial, checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        self.set_state(torch.load(checkpoint_path, weights_only=True))


def _tune_trial(params: dict[str, Any], *, config: dict[str, Any], budget: dict[str, Any], target: float,
                data_dir: str | None, run_dir: str, trial_fn) -> None:  # type: ignore[no-untyped-def]
    """One candidate as a Tune trial: train with the proxy, report the reward."""
    from ray import tune

    settings = SearchConfig(**config)
    skeleton = get_skeleton(settings.skeleton)
    tokens = [int(t) for t in params["tokens"]]
    trial = Trial("search", settings.strategy, decode(skeleton, tokens), Budget(**budget), settings.seed,
                  data_dir=data_dir, run_dir=run_dir, labels=(("tokens", tokens),))
    result = trial_fn(trial)
    cost = cost_of(trial.spec, settings.cost) if result.top1 is not None else None
    value = Reward(settings.reward, target)(None if result.top1 is None else result.top1 / 100, cost)
    tune.report({"reward": value, "top1": -1.0 if result.top1 is None else result.top1, "cost": cost or 0.0,
                 "madds": result.madds, "params": result.params, "key": result.key, "seconds": result.wall_s})


def run_search_on_tune(config: SearchConfig, budget: Budget, options: RunOptions, *,
                       trial_fn: TrialFn = train_trial) -> dict[str, Any]:
    """The search with Ray Tune running the trials (``--backend tune``): FailureConfig retries
    a failed or lost trial twice; the same command after an interruption restores the Tune
    experiment (and with it the strategy's state) and runs only what is left."""
    try:
        import ray
        from ray import tune
        from ray.tune.search import ConcurrencyLimiter
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("--backend tune needs Ray Tune: pip install 'effnet[ray]'") from error
    out = Path(options.out_dir).resolve()
    skeleton = get_skeleton(config.skeleton)
    target = default_target(config)
    if not ray.is_initialized():
        ray.init(address=options.ray_address, include_dashboard=False, log_to_driver=False,
                 **({} if options.ray_address else {"num_cpus": options.workers}))
    trainable = tune.with_resources(
        tune.with_parameters(_tune_trial, config=asdict(config), budget=asdict(budget), target=target,
                             data_dir=options.data_dir, run_dir=str(out / "trials"), trial_fn=trial_fn), {"cpu": 1})
    experiment = out / "tune" / "search"
    if tune.Tuner.can_restore(str(experiment)):
        tuner = tune.Tuner.restore(str(experiment), trainable, resume_errored=True)
    else:
        strategy = make_strategy(config.strategy, skeleton.sizes, config.seed)
        searcher = ConcurrencyLimiter(StrategySearcher(strategy, evaluations=config.evaluations),
                                      max_concurrent=options.workers, batch=strategy.batch_size > 1)
        tuner = tune.Tuner(trainable, tune_config=tune.TuneConfig(search_alg=searcher, num_samples=config.evaluations,
                                                                  metric="reward", mode="max"),
                           run_config=tune.RunConfig(storage_path=str(out / "tune"), name="search", verbose=0,
                                                     failure_config=tune.FailureConfig(max_failures=2)))
    grid = tuner.fit()
    rows = sorted((r for r in grid if r.metrics and "reward" in r.metrics), key=lambda r: r.config["candidate"])
    records = [{"evaluation": i + 1, "id": r.config["candidate"], "tokens": list(r.config["tokens"]),
                "key": r.metrics["key"], "top1": None if r.metrics["top1"] < 0 else r.metrics["top1"],
                "cost": r.metrics["cost"] or None, "madds": r.metrics["madds"], "params": r.metrics["params"],
                "reward": r.metrics["reward"], "seconds": r.metrics["seconds"], "seed": config.seed, "error": None}
               for i, r in enumerate(rows)]
    write_candidates(out, records, skeleton)
    return summarise(out, config, budget, target, records, skeleton)

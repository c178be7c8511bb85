"""The strategies on Ray Tune: :class:`StrategySearcher` is a Tune ``Searcher`` around any
effnet strategy. ``suggest`` hands out the strategy's candidates (a whole PPO batch is asked
at once; ``ConcurrencyLimiter(batch=True)`` holds results until the batch is done, so PPO
updates on whole batches), ``on_trial_complete`` tells it the reward, and ``save`` /
``restore`` carry the strategy's state, so ``Tuner.restore`` continues an interrupted search
instead of restarting it. ``Searcher`` is a developer API of Ray: tested against the pinned
Ray (constraints.txt).

The search keeps the same memory in OUT as on the other backends (``loop.SearchState``):
every finished trial goes to the journal as soon as Tune reports it, the search state and
``candidates.jsonl`` are saved whenever the strategy is told, and ``summary.json``,
``best.json`` and the plot are written at the end, so ``effnet nas retrain`` and
``effnet nas proxy-check`` read a Tune search's folder, and either backend resumes it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..atomic import write_atomic
from ..lab.experiments import LabOptions
from ..lab.dispatch import TrialFn
from ..lab.trials import Budget, TrialResult, describe, train_trial
from .loop import SearchConfig, SearchState
from .strategies import Candidate, Strategy

try:  # Ray is optional (effnet[ray]); the searcher needs it, the rest of effnet does not
    from ray.tune.search import Searcher as _TuneSearcher
except ImportError:  # pragma: no cover - depends on the environment
    _TuneSearcher = object  # type: ignore[assignment,misc]

REPORT = "search"   # the reported key holding the trial's result, as JSON (Tune flattens nested dicts)


class StrategySearcher(_TuneSearcher):  # type: ignore[misc,valid-type]
    def __init__(self, strategy: Strategy, search: SearchState, *, evaluations: int,
                 waiting: Sequence[Candidate] = (), metric: str = "reward", mode: str = "max") -> None:
        if _TuneSearcher is object:
            raise ImportError("the Ray Tune searcher needs Ray Tune: pip install 'effnet[ray]'")
        super().__init__(metric=metric, mode=mode)
        self.strategy, self.search = strategy, search
        self.evaluations = evaluations
        # Resumed from the search state: the candidates asked before and never told go first.
        self.queue: list[Candidate] = list(waiting)
        self.suggested = len(search.records)
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

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        # The journal at once: with batch=True the ConcurrencyLimiter holds on_trial_complete
        # until the whole batch is done, and a trial finished before a kill must not train again.
        report = json.loads(result.get(REPORT, "null") or "null")
        if report is not None and not report["journaled"]:
            self.search.journal.append(TrialResult.from_dict(report["result"]))

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        candidate_id = self.running.pop(trial_id, None)
        if candidate_id is None:
            return
        candidate = Candidate(candidate_id, self.strategy.pending[candidate_id])
        report = json.loads(result.get(REPORT, "null") or "null") if result and not error else None
        if report is not None:
            outcome, cost, value = TrialResult.from_dict(report["result"]), report["cost"], float(report["reward"])
        else:  # lost even after FailureConfig's retries: a failed candidate, as a failed training is locally
            trial = self.search.trial(candidate.tokens)
            outcome = describe(trial, None, 0.0, "the Ray Tune trial failed (its log is under OUT/tune/search)")
            cost, value = self.search.score(trial, outcome)
        self.strategy.tell(candidate.id, value)
        self.search.add(candidate, outcome, cost, value)
        self.search.save(self.strategy)

    def get_state(self) -> dict[str, Any]:
        return {"strategy": self.strategy.state_dict(), "suggested": self.suggested, "evaluations": self.evaluations,
                "queue": [[c.id, list(c.tokens)] for c in self.queue], "running": dict(self.running),
                "records": self.search.records}

    def set_state(self, state: dict[str, Any]) -> None:
        self.strategy.load_state_dict(state["strategy"])
        self.suggested, self.evaluations = int(state["suggested"]), int(state["evaluations"])
        self.queue = [Candidate(int(i), tuple(t)) for i, t in state["queue"]]
        self.running = {str(k): int(v) for k, v in state["running"].items()}
        self.search.records = list(state.get("records", []))

    def save(self, checkpoint_path: str) -> None:
        write_atomic(checkpoint_path, lambda partial: torch.save(self.get_state(), partial))

    def restore(self, checkpoint_path: str) -> None:
        self.set_state(torch.load(checkpoint_path, weights_only=True))


def _tune_trial(params: dict[str, Any], *, search: SearchState, trial_fn: TrialFn) -> None:
    """One candidate as a Tune trial: train with the proxy (unless the journal has it), report
    the reward and the result."""
    from ray import tune

    trial = search.trial([int(t) for t in params["tokens"]])
    done = search.journal.load().get(trial.key)
    result = done or trial_fn(trial)
    cost, value = search.score(trial, result)
    tune.report({"reward": value, REPORT: json.dumps({"result": result.to_dict(), "cost": cost, "reward": value,
                                                       "journaled": done is not None})})


def run_search_on_tune(config: SearchConfig, budget: Budget, options: LabOptions, *,
                       trial_fn: TrialFn = train_trial) -> dict[str, Any]:
    """The search with Ray Tune running the trials (``--backend tune``): FailureConfig retries
    a failed or lost trial twice; the same command after an interruption restores the Tune
    experiment (and with it the strategy's state) and runs only what is left. Without a Tune
    experiment to restore (its folder gone, or a search begun on another backend) it goes on
    from the search state and the journal, as the local backend does."""
    try:
        import ray
        from ray import tune
        from ray.tune.search import ConcurrencyLimiter
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("--backend tune needs Ray Tune: pip install 'effnet[ray]'") from error
    out = Path(options.out_dir).resolve()
    search = SearchState(out, config, budget, options.data_dir)
    strategy = config.new_strategy(search.skeleton.sizes)
    waiting = search.resume(strategy)   # also refuses a folder holding a search of other settings
    if len(search.records) >= config.evaluations:
        return search.summarise()
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=options.ray_address, include_dashboard=False, log_to_driver=False,
                 **({} if options.ray_address else {"num_cpus": options.workers}))
    try:
        trainable = tune.with_resources(tune.with_parameters(_tune_trial, search=search, trial_fn=trial_fn), {"cpu": 1})
        experiment = out / "tune" / "search"
        if tune.Tuner.can_restore(str(experiment)):
            tuner = tune.Tuner.restore(str(experiment), trainable, resume_errored=True)
        else:
            searcher = ConcurrencyLimiter(StrategySearcher(strategy, search, evaluations=config.evaluations,
                                                           waiting=waiting),
                                          max_concurrent=options.workers, batch=strategy.batch_size > 1)
            tuner = tune.Tuner(trainable, tune_config=tune.TuneConfig(search_alg=searcher,
                                                                      num_samples=config.evaluations,
                                                                      metric="reward", mode="max"),
                               run_config=tune.RunConfig(storage_path=str(out / "tune"), name="search", verbose=0,
                                                         failure_config=tune.FailureConfig(max_failures=2)))
        tuner.fit()
    finally:
        if started_here:
            ray.shutdown()
    # The searcher that ran may be one Tune restored, not ours: its records are in the saved state.
    search.resume(config.new_strategy(search.skeleton.sizes))
    if not search.records:  # Tune returns from an interruption (Ctrl-C) instead of raising
        raise KeyboardInterrupt("the search stopped before any candidate finished; the same command resumes it")
    return search.summarise()

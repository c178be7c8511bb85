"""Run trials in parallel: local processes by default, a Ray cluster for those who have one.

Every finished trial goes to the journal at once, so an interrupted experiment resumes with
only the unfinished trials.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from .journal import Journal
from .trials import Trial, TrialResult, train_trial

TrialFn = Callable[[Trial], TrialResult]
BACKENDS = ("local", "ray")


def cpu_count() -> int:
    """The CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)


def run_trials(trials: Sequence[Trial], journal: Journal | None = None, *, workers: int = 1,
               backend: str = "local", ray_address: str | None = None, trial_fn: TrialFn = train_trial,
               progress: bool = True, description: str = "trials") -> list[TrialResult]:
    """Results for ``trials`` in their order; trials already in ``journal`` are not rerun."""
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r} is unknown; choose one of {BACKENDS}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    done = journal.load() if journal is not None else {}
    pending: dict[str, Trial] = {}
    for trial in trials:
        if trial.key not in done:
            pending.setdefault(trial.key, trial)

    with _progress(progress) as bar:
        task = bar.add_task(description, total=len({t.key for t in trials}), completed=len({t.key for t in trials}) - len(pending))

        def finished(result: TrialResult) -> None:
            done[result.key] = result
            if journal is not None:
                journal.append(result)
            accuracy = "failed" if result.top1 is None else f"{result.top1:.2f}%"
            bar.console.print(f"  {result.method:<10} {_labels(result)} seed {result.seed}: {accuracy} "
                              f"({result.wall_s:.0f} s)" + (f"  {result.error}" if result.error else ""))
            bar.advance(task)

        if backend == "ray":
            _run_ray(list(pending.values()), trial_fn, finished, ray_address, workers)
        elif workers == 1 or len(pending) <= 1:
            for trial in pending.values():
                finished(trial_fn(trial))
        else:
            _run_processes(list(pending.values()), trial_fn, finished, workers)
    return [done[t.key] for t in trials]


def _run_processes(trials: list[Trial], trial_fn: TrialFn, finished: Callable[[TrialResult], None],
                   workers: int) -> None:
    threads = max(1, cpu_count() // workers)
    # spawn: a forked PyTorch process can deadlock in its thread pools.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=(threads,)) as pool:
        futures = {pool.submit(trial_fn, trial) for trial in trials}
        while futures:
            ready, futures = wait(futures, return_when=FIRST_COMPLETED)
            for future in ready:
                finished(future.result())


def _run_ray(trials: list[Trial], trial_fn: TrialFn, finished: Callable[[TrialResult], None],
             address: str | None, workers: int) -> None:
    try:
        import ray
    except ImportError:
        raise RuntimeError("the Ray backend needs Ray: `pip install 'effnet[ray]'` (or `pip install ray`)") from None
    if not trials:
        return
    started_here = not ray.is_initialized()
    if started_here:
        # address=None starts a local Ray instance; "auto" or "ray://host:port" joins a cluster.
        ray.init(address=address, num_cpus=None if address else cpu_count(), include_dashboard=False,
                 log_to_driver=False)
    try:
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)) // workers)
        remote = ray.remote(num_cpus=cpus)(_with_threads)
        refs = [remote.remote(trial_fn, trial, cpus) for trial in trials]
        while refs:
            ready, refs = ray.wait(refs, num_returns=1)
            finished(ray.get(ready[0]))
    finally:
        if started_here:
            ray.shutdown()


def _with_threads(trial_fn: TrialFn, trial: Trial, threads: int) -> TrialResult:
    _init_worker(threads)
    return trial_fn(trial)


def _labels(result: TrialResult) -> str:
    def shown(value: object) -> str:
        if isinstance(value, float):
            return f"{value:g}"
        if isinstance(value, (list, tuple)):  # a search's tokens: compact, on one line
            return "".join(str(v) for v in value) if all(isinstance(v, int) and 0 <= v < 10 for v in value) else str(value)
        return str(value)
    return " ".join(f"{k}={shown(v)}" for k, v in result.labels.items())


def _progress(enabled: bool) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), disable=not enabled)

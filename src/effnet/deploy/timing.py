"""How effnet times a piece of work, in one place: ``--runtime auto`` (which runtime is
fastest here), ``effnet bench`` and the scripts under ``benchmarks/`` all call these.

A runner is a callable without arguments; one call is one unit of work (a batch, a training
step). Medians, not means: a burst of load from other processes during a few calls moves a
median less. Contestants that are compared are timed in one process, in alternating order
round after round (A B C, C B A, ...), so that load from elsewhere and CPU frequency drift
hit all of them alike.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

Work = Callable[[], object]


def call_times(run: Work, *, calls: int, warmup: int = 0) -> list[float]:
    """Seconds of each of ``calls`` calls of ``run``, after ``warmup`` untimed ones."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return times


def seconds_per_call(run: Work, *, calls: int = 5, warmup: int = 2) -> float:
    """The median of ``calls`` timed calls after ``warmup`` untimed ones."""
    return statistics.median(call_times(run, calls=calls, warmup=warmup))


def calls_for(run: Work, min_time: float) -> list[float]:
    """Seconds of each call of ``run`` made back to back until ``min_time`` seconds have passed
    (at least one call)."""
    times, start = [], time.perf_counter()
    while True:
        before = time.perf_counter()
        run()
        times.append(time.perf_counter() - before)
        if time.perf_counter() - start >= min_time:
            return times


def time_alternately(runners: dict[str, Work], *, rounds: int = 3, min_time: float = 1.0,
                     warmup: int = 2) -> dict[str, list[float]]:
    """Seconds per call for each runner, one sample per round: the median of the calls made
    back to back for at least ``min_time`` seconds."""
    for run in runners.values():
        for _ in range(warmup):
            run()
    samples: dict[str, list[float]] = {name: [] for name in runners}
    names = list(runners)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            samples[name].append(statistics.median(calls_for(runners[name], min_time)))
    return samples


__all__ = ["Work", "call_times", "calls_for", "seconds_per_call", "time_alternately"]

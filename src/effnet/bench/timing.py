"""Timing contestants fairly: every contestant runs in the same process, in alternating order
round after round (A B C, C B A, ...), so that load from other processes and CPU frequency
drift hit all of them alike; each number is the median over rounds."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

Runner = Callable[[], object]


def time_alternately(runners: dict[str, Runner], *, rounds: int = 3, min_time: float = 1.0,
                     warmup: int = 2) -> dict[str, list[float]]:
    """Seconds per call for each runner, one sample per round: the median of the calls made
    back to back for at least ``min_time`` seconds (a median, so that a burst of load from
    other processes during a few calls does not move it)."""
    for run in runners.values():
        for _ in range(warmup):
            run()
    samples: dict[str, list[float]] = {name: [] for name in runners}
    names = list(runners)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            run, calls, start = runners[name], [], time.perf_counter()
            while True:
                before = time.perf_counter()
                run()
                calls.append(time.perf_counter() - before)
                if time.perf_counter() - start >= min_time:
                    break
            samples[name].append(statistics.median(calls))
    return samples


__all__ = ["Runner", "time_alternately"]

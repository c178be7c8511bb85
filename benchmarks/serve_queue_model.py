"""The queue model bench_serve.py sets beside its half-load measurement: what a perfect
batching server would show for the same arrivals (no client, no loop lag, no scheduling
noise). A queue model is written by hand here: no library simulates this batching policy."""

from __future__ import annotations

import random

import numpy as np


def gap(rng: random.Random, rate: float, arrivals: str) -> float:
    """Seconds to the next arrival: exponential (Poisson arrivals) or ``1 / rate`` (paced)."""
    return rng.expovariate(rate) if arrivals == "poisson" else 1.0 / rate



def ideal_batcher(batch_s: list[float], saturated: float, rate: float, seconds: float, *, arrivals: str = "poisson",
                  runs: int = 200, seed: int = 0) -> dict[str, object]:
    """What the half-load latencies of a perfect batching server would be: a simulated queue
    with no client, no loop lag and no scheduling noise. Requests arrive as the benchmark sends
    them; whenever the server is idle it takes everything waiting (up to ``len(batch_s)``) as one
    batch, which costs the runtime's measured time plus the per-image work outside it (HTTP,
    decoding: what the measured saturated throughput leaves over, ``1/saturated - t(B)/B``).
    Returns the p50, p99 and the goal's ratio p99 / (2 p50 + 5 ms) over ``runs`` runs as long
    as the benchmark's (median and 10th-90th percentile), and for one run 100x as long."""
    max_batch = len(batch_s)
    per_image = max(0.0, 1.0 / saturated - batch_s[-1] / max_batch)
    cost = [0.0] + [t + b * per_image for b, t in enumerate(batch_s, start=1)]

    def one(count: int, rng: random.Random) -> tuple[float, float]:
        t, arrived = 0.0, []
        for _ in range(count):
            t += gap(rng, rate, arrivals)
            arrived.append(t)
        latencies, free, i = [], 0.0, 0
        while i < count:
            start = max(free, arrived[i])
            j = i
            while j < count and j - i < max_batch and arrived[j] <= start:
                j += 1
            free = start + cost[j - i]
            latencies += [free - a for a in arrived[i:j]]
            i = j
        p50, p99 = np.percentile(np.array(latencies) * 1000, [50, 99])
        return float(p50), float(p99)

    rng = random.Random(seed)
    count = max(1, int(rate * seconds))
    samples = [one(count, rng) for _ in range(runs if arrivals == "poisson" else 1)]  # paced: every run is the same
    ratios = [p99 / (2 * p50 + 5.0) for p50, p99 in samples]
    long_p50, long_p99 = one(count * 100, rng)
    spread = lambda v: [float(np.percentile(v, q)) for q in (50, 10, 90)]  # noqa: E731
    return {"arrivals": arrivals, "rate": rate, "per_image_outside_ms": per_image * 1000,
            "batch_ms": [t * 1000 for t in batch_s], "p50_ms": spread([p for p, _ in samples]),
            "p99_ms": spread([p for _, p in samples]), "ratio": spread(ratios),
            "long_run": {"p50_ms": long_p50, "p99_ms": long_p99, "ratio": long_p99 / (2 * long_p50 + 5.0)}}


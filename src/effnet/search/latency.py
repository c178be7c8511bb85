"""Latency of a candidate on this machine's CPU (MnasNet's cost; the EfficientNet search used
MAdds instead): batch 1, one thread, BN folded and channels_last, median of repeated runs."""

from __future__ import annotations

import statistics
import time

import torch

from ..deploy.fuse import optimize_for_inference
from ..model import build_model
from ..spec import NetworkSpec


def cpu_latency_ms(spec: NetworkSpec, *, runs: int = 30, warmup: int = 5, threads: int = 1) -> float:
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        model = optimize_for_inference(build_model(spec).eval())
        x = torch.randn(1, spec.in_chans, spec.resolution, spec.resolution).contiguous(memory_format=torch.channels_last)
        times = []
        with torch.inference_mode():
            for i in range(warmup + runs):
                start = time.perf_counter()
                model(x)
                if i >= warmup:
                    times.append(time.perf_counter() - start)
        return statistics.median(times) * 1000
    finally:
        torch.set_num_threads(previous)

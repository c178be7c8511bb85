"""Latency of a candidate on this machine's CPU (MnasNet's cost; the EfficientNet search used
MAdds instead): batch 1, one thread, BN folded and channels_last, median of repeated runs."""

from __future__ import annotations

import torch

from ..deploy.fuse import optimize_for_inference
from ..deploy.timing import seconds_per_call
from ..model import build_model
from ..spec import NetworkSpec


def cpu_latency_ms(spec: NetworkSpec, *, runs: int = 30, warmup: int = 5, threads: int = 1) -> float:
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        model = optimize_for_inference(build_model(spec).eval())
        x = torch.randn(1, spec.in_chans, spec.resolution, spec.resolution).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            return seconds_per_call(lambda: model(x), calls=runs, warmup=warmup) * 1000
    finally:
        torch.set_num_threads(previous)

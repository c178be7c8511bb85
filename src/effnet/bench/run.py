"""``effnet bench``: speed and memory of our inference and training paths against timm and
torchvision, in one process (:mod:`effnet.deploy.timing`). Ratios are computed within one run
and are the numbers to compare across machines; absolute numbers are for this machine only.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from ..counting import count_madds
from ..deploy.timing import time_alternately
from ..zoo import get_spec
from .contestants import (EXECUTORCH_PATHS, ONNX_PATHS, PEERS, TRAIN_PATHS, Setting, check_device, inference_runner,
                          our_module, set_threads, train_runner)
from .memory import measure
from .report import MemoryRow, Report, Row, best_vs_best, cpu_peak, library_of, rows_from, speedups


def run_bench(setting: Setting = Setting(), *, peers: Sequence[str] | None = None,
              inference: Sequence[str] = ("eager", "channels_last", "fused", "onnx-fp32", "onnx-int8"),
              training: Sequence[str] = TRAIN_PATHS, peer_paths: Sequence[str] = ("eager", "channels_last"),
              peer_training: Sequence[str] = ("channels_last",), latency_batch: int = 1,
              throughput_batch: int = 32, train_batch: int = 32, rounds: int = 3, min_time: float = 1.0,
              memory: bool = True, profile: bool = False,
              log: Callable[[str], None] = lambda message: None) -> Report:
    """Benchmark ``setting.model`` against ``peers`` (default: the same architecture in timm
    and torchvision), each peer along ``peer_paths`` (PEER_PATHS: eager, channels_last,
    compiled, through onnxruntime or OpenVINO) and ``peer_training``, and return the report."""
    set_threads(setting.threads)
    check_device(setting)
    # The registered network, or the one the weights carry (only then is a model built here).
    spec = get_spec(setting.model) if setting.weights is None else our_module(setting).spec
    peers = list(PEERS.get(spec.name, ()) if peers is None else peers)
    notes = []
    if setting.device == "cuda":
        cpu_only = (*ONNX_PATHS, *EXECUTORCH_PATHS)
        dropped = [p for p in inference if p in cpu_only]
        inference = [p for p in inference if p not in cpu_only]
        left_out = f"; left out (CPU-only onnxruntime, OpenVINO, ExecuTorch): {', '.join(dropped)}" if dropped else ""
        notes.append(f"CUDA ({torch.cuda.get_device_name()}): every contestant in bf16 autocast (the eager path "
                     f"NCHW, the others and training channels_last); memory = torch.cuda.max_memory_allocated{left_out}")
    if not peers:
        notes.append(f"no peer architecture known for {spec.name}: absolute numbers only")
    madds = count_madds(spec, setting.resolution)
    machine = {**cpu_peak(setting.threads), "torch": torch.__version__, "madds_per_image": madds}
    if setting.device == "cuda":
        # The CPU's peak means nothing for GPU numbers; no GPU peak is assumed.
        machine.update(peak_madds_per_s=None, device=torch.cuda.get_device_name())
    peer_inference = [p if path == "eager" else f"{p}:{path}" for p in peers for path in peer_paths]
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="effnet-bench-") as tmp:
        for section, batch in (("latency", latency_batch), ("throughput", throughput_batch)):
            if not batch:
                continue
            log(f"{section}: preparing {len(inference) + len(peer_inference)} contestants at batch {batch}")
            runners = {f"ours:{path}": inference_runner(f"ours:{path}", setting, batch, Path(tmp)) for path in inference}
            runners.update({name: inference_runner(name, setting, batch, Path(tmp)) for name in peer_inference})
            precision = {name: run.precision for name, run in runners.items()}
            rows += rows_from(section, batch, time_alternately(runners, rounds=rounds, min_time=min_time), madds,
                              precision)
            log(f"{section}: done")
            del runners
    if training and train_batch:
        train = [f"ours:{path}" for path in training] + [f"{p}:{path}" for p in peers for path in peer_training]
        log(f"train: {len(train)} contestants at batch {train_batch}")
        runners = {name: train_runner(name, setting, train_batch) for name in train}
        rows += rows_from("train", train_batch, time_alternately(runners, rounds=rounds, min_time=min_time, warmup=1),
                          madds * 3,  # forward + two backward products (input and weight gradients)
                          {name: "bf16" for name in runners} if setting.device == "cuda" else None)
        del runners
    speedups(rows)
    memory_rows = training_memory(setting, training, peers, train_batch, log) if memory and training and train_batch else []
    profile_text = _profile(setting, throughput_batch) if profile else None
    return Report(setting, machine, rows, memory_rows, notes, profile_text, best_vs_best(rows))


def training_memory(setting: Setting, training: Sequence[str], peers: Sequence[str], batch: int,
                    log: Callable[[str], None] = lambda message: None) -> list[MemoryRow]:
    """Peak training-step memory of ours and each peer, each in a fresh subprocess."""
    rows = []
    for name in [f"ours:{path}" for path in training] + [f"{p}:channels_last" for p in peers]:
        log(f"memory: {name}")
        m = measure(name, "train", setting, batch)
        rows.append(MemoryRow(name, "train", batch, m["step_bytes"] / 2**20, m["peak_bytes"] / 2**20))
    for library in sorted({library_of(r.contestant) for r in rows} - {"ours"}):
        smallest = min(r.step_mb for r in rows if library_of(r.contestant) == library)
        for row in rows:
            row.vs_peer[library] = row.step_mb / smallest if smallest else math.nan
    return rows


def _profile(setting: Setting, batch: int, top: int = 15) -> str:
    """torch.profiler's top operators (self CPU time) for our fused eager path at ``batch``."""
    run = inference_runner("ours:fused", setting, batch)
    run()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(2):
            run()
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=top)


__all__ = ["run_bench", "training_memory"]

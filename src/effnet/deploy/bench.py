"""Speed and memory of our inference and training paths against timm and torchvision.

Every contestant runs in the same process, in alternating order round after round (A B C,
C B A, ...), so that load from other processes and CPU frequency drift hit all of them
alike; each number is the median over rounds. Ratios are computed within one run and are
the numbers to compare across machines; absolute numbers are for this machine only.
"""

from __future__ import annotations

import math
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from .contestants import (ONNX_PATHS, PEERS, TRAIN_PATHS, Setting, check_device, inference_runner, set_threads,
                          train_runner)

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


@dataclass
class Row:
    section: str            # "latency" (batch 1), "throughput", "train"
    contestant: str
    batch: int
    seconds: float          # median seconds per call (per step for "train")
    spread: float           # (max - min) / median over rounds: how noisy this number is
    images_per_s: float
    speedup: dict[str, float] = field(default_factory=dict)  # peer library -> its fastest time / ours
    madds_per_s: float | None = None


@dataclass
class MemoryRow:
    contestant: str
    kind: str
    batch: int
    step_mb: float
    peak_mb: float
    vs_peer: dict[str, float] = field(default_factory=dict)  # peer library -> ours / its smallest


@dataclass
class Report:
    setting: Setting
    machine: dict[str, object]
    rows: list[Row]
    memory: list[MemoryRow]
    notes: list[str]
    profile: str | None = None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def cpu_peak(threads: int) -> dict[str, object]:
    """An estimate of the fp32 multiply-add peak of ``threads`` cores, from the CPU flags:
    AVX-512 = 16 fp32 lanes, AVX2 = 8; two FMA units per core (server cores since Skylake-SP;
    one on some parts, which halves the peak); the clock is the nominal one."""
    flags, mhz = set(), 0.0
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags") and not flags:
                    flags = set(line.split(":", 1)[1].split())
                elif line.startswith("cpu MHz") and not mhz:
                    mhz = float(line.split(":", 1)[1])
    except OSError:
        pass
    lanes = 16 if "avx512f" in flags else 8 if "avx2" in flags else 4
    fma_units = 2 if "fma" in flags else 1
    peak = threads * mhz * 1e6 * lanes * fma_units if mhz else None
    return {"processor": platform.processor() or platform.machine(), "mhz": mhz, "threads": threads,
            "fp32_lanes": lanes, "fma_units_assumed": fma_units, "peak_madds_per_s": peak,
            "amx": "amx_tile" in flags, "avx512_vnni": "avx512_vnni" in flags}


def _peers_of(contestant: str) -> str:
    return contestant.split(":", 1)[0]


def _speedups(rows: list[Row]) -> None:
    for section in {row.section for row in rows}:
        group = [row for row in rows if row.section == section]
        for library in sorted({_peers_of(row.contestant) for row in group} - {"ours"}):
            fastest = min(row.seconds / row.batch for row in group if _peers_of(row.contestant) == library)
            for row in group:
                row.speedup[library] = fastest / (row.seconds / row.batch)


def run_bench(setting: Setting = Setting(), *, peers: Sequence[str] | None = None,
              inference: Sequence[str] = ("eager", "channels_last", "fused", "onnx-fp32", "onnx-int8"),
              training: Sequence[str] = TRAIN_PATHS, latency_batch: int = 1,
              throughput_batch: int = 32, train_batch: int = 32, rounds: int = 3, min_time: float = 1.0,
              memory: bool = True, profile: bool = False,
              log: Callable[[str], None] = lambda message: None) -> Report:
    """Benchmark ``setting.model`` against ``peers`` (default: the same architecture in timm
    and torchvision, eager and channels_last) and return the report."""
    from ..counting import count_madds
    from ..zoo import get_spec

    set_threads(setting.threads)
    check_device(setting)
    peers = list(PEERS.get(setting.model, ()) if peers is None else peers)
    notes = []
    if setting.device == "cuda":
        dropped = [p for p in inference if p in ONNX_PATHS]
        inference = [p for p in inference if p not in ONNX_PATHS]
        notes.append(f"CUDA ({torch.cuda.get_device_name()}): every contestant in bf16 autocast and channels_last; "
                     "memory = torch.cuda.max_memory_allocated" + (f"; left out (CPU-only onnxruntime): "
                                                                  f"{', '.join(dropped)}" if dropped else ""))
    if not peers:
        notes.append(f"no peer architecture known for {setting.model}: absolute numbers only")
    madds = count_madds(get_spec(setting.model), setting.resolution)
    machine = {**cpu_peak(setting.threads), "torch": torch.__version__, "madds_per_image": madds}
    if setting.device == "cuda":
        # The CPU's peak means nothing for GPU numbers; no GPU peak is assumed.
        machine.update(peak_madds_per_s=None, device=torch.cuda.get_device_name())
    peer_inference = [f"{p}{suffix}" for p in peers for suffix in ("", ":channels_last")]
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="effnet-bench-") as tmp:
        for section, batch in (("latency", latency_batch), ("throughput", throughput_batch)):
            if not batch:
                continue
            log(f"{section}: preparing {len(inference) + len(peer_inference)} contestants at batch {batch}")
            runners = {f"ours:{path}": inference_runner(f"ours:{path}", setting, batch, Path(tmp)) for path in inference}
            runners.update({name: inference_runner(name, setting, batch) for name in peer_inference})
            rows += _rows(section, batch, time_alternately(runners, rounds=rounds, min_time=min_time), madds)
            log(f"{section}: done")
            del runners
    if training and train_batch:
        train = [f"ours:{path}" for path in training] + [f"{p}:channels_last" for p in peers]
        log(f"train: {len(train)} contestants at batch {train_batch}")
        runners = {name: train_runner(name, setting, train_batch) for name in train}
        rows += _rows("train", train_batch, time_alternately(runners, rounds=rounds, min_time=min_time, warmup=1),
                      madds * 3)  # forward + two backward products (input and weight gradients)
        del runners
    _speedups(rows)
    memory_rows = training_memory(setting, training, peers, train_batch, log) if memory and training and train_batch else []
    profile_text = _profile(setting, throughput_batch) if profile else None
    return Report(setting, machine, rows, memory_rows, notes, profile_text)


def _rows(section: str, batch: int, samples: dict[str, list[float]], madds: int) -> list[Row]:
    rows = []
    for name, values in samples.items():
        median = statistics.median(values)
        rows.append(Row(section, name, batch, median, (max(values) - min(values)) / median, batch / median,
                        madds_per_s=madds * batch / median))
    return rows


def training_memory(setting: Setting, training: Sequence[str], peers: Sequence[str], batch: int,
                    log: Callable[[str], None] = lambda message: None) -> list[MemoryRow]:
    """Peak training-step memory of ours and each peer, each in a fresh subprocess."""
    from .memory import measure

    rows = []
    for name in [f"ours:{path}" for path in training] + [f"{p}:channels_last" for p in peers]:
        log(f"memory: {name}")
        m = measure(name, "train", setting, batch)
        rows.append(MemoryRow(name, "train", batch, m["step_bytes"] / 2**20, m["peak_bytes"] / 2**20))
    for library in sorted({_peers_of(r.contestant) for r in rows} - {"ours"}):
        smallest = min(r.step_mb for r in rows if _peers_of(r.contestant) == library)
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


def to_markdown(report: Report) -> str:
    """The report as markdown tables: speed (with speed-ups over each peer library's fastest
    contestant in the same section) and training memory."""
    libraries = sorted({lib for row in report.rows for lib in row.speedup})
    m = report.machine
    lines = [f"`{report.setting.model}` at {report.setting.resolution}px, {report.setting.threads} threads, "
             f"torch {m.get('torch', torch.__version__)}. Speed-up = the library's fastest contestant's time per image / this one's "
             "(> 1: faster than that peer)."]
    if m.get("peak_madds_per_s"):
        lines.append(f"Peak estimate: {m['peak_madds_per_s'] / 1e9:.0f} G multiply-adds/s ({m['threads']} cores x "
                     f"{m['mhz']:.0f} MHz x {m['fp32_lanes']} fp32 lanes x {m['fma_units_assumed']} FMA units, assumed).")
    peak = m.get("peak_madds_per_s")
    if report.rows:
        lines += ["", "| section | contestant | batch | ms/call | images/s | G MAdds/s | % of peak | spread | "
                  + " | ".join(f"speed-up vs {lib}" for lib in libraries) + " |",
                  "|" + "---|" * (8 + len(libraries))]
        for row in report.rows:
            pct = f"{100 * row.madds_per_s / peak:.1f}%" if peak and row.madds_per_s else "-"
            lines.append(f"| {row.section} | {row.contestant} | {row.batch} | {row.seconds * 1e3:.1f} | {row.images_per_s:.1f} | "
                         f"{(row.madds_per_s or 0) / 1e9:.1f} | {pct} | {row.spread:.0%} | "
                         + " | ".join(f"{row.speedup.get(lib, math.nan):.2f}x" for lib in libraries) + " |")
    if report.memory:
        mem_libs = sorted({lib for row in report.memory for lib in row.vs_peer})
        lines += ["", "| training memory | batch | step MiB (peak RSS - RSS before) | process peak MiB | "
                  + " | ".join(f"vs {lib} smallest" for lib in mem_libs) + " |", "|" + "---|" * (4 + len(mem_libs))]
        for mrow in report.memory:
            lines.append(f"| {mrow.contestant} | {mrow.batch} | {mrow.step_mb:.0f} | {mrow.peak_mb:.0f} | "
                         + " | ".join(f"{mrow.vs_peer.get(lib, math.nan):.2f}x" for lib in mem_libs) + " |")
    lines += [f"- {note}" for note in report.notes]
    return "\n".join(lines) + "\n"

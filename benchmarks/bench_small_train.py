"""Training throughput of the small Fashion-MNIST network of docs/training.md (fmnist_s1 by
default): our model against timm's EfficientNet built with the same architecture, in the
same training loop, alternately in one process.

    .venv/bin/python benchmarks/bench_small_train.py [--phi 1] [--batch 256] [--threads 2]

timm's generator is given the same stages (its block strings), stem, head, activation, BN
settings and drop rates; its stem stride (fixed at 2 in timm) is set to 1 as ours is, and the
parameter counts are checked equal before anything is timed. Every contestant runs the same
step (``effnet.bench.train_step``): forward, label-smoothed cross entropy, backward, TF
RMSProp step, on a batch of 28 px grey images in channels_last. Writes
``results/small_train_cpu/`` (``small_train_cpu_default_allocator/`` with ``--allocator
default``): images/s, the ratio to timm's eager speed, the multiply-adds per second against
the CPU's peak, and a profile of our eager step (where the time goes).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

from effnet.allocator import keep_freed_cpu_memory
from effnet.bench import cpu_peak, time_alternately
from effnet.bench.peer_models import timm_same_architecture
from effnet.bench.results import write_result
from effnet.bench.train_step import training_step
from effnet.counting import count
from effnet.deploy.timing import Work, call_times
from effnet.kernels import use_fused_kernels
from effnet.model import build_model
from effnet.spec import NetworkSpec
from effnet.train.optim import build_optimizer
from effnet.zoo.small import fashion_mnist_net


def train_step(model: nn.Module, batch: int, size: int, in_chans: int, *, compile: bool = False,
               fused: bool = False) -> Work:
    """The training loop's step: TF RMSProp, label-smoothed cross entropy, channels_last."""
    model = model.train().to(memory_format=torch.channels_last)
    if fused:
        use_fused_kernels(model)
    optimizer = build_optimizer("rmsprop_tf", model, 0.01)
    forward = torch.compile(model) if compile else model
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch, in_chans, size, size, generator=generator).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,), generator=generator)
    return training_step(forward, optimizer, x, y, criterion=nn.CrossEntropyLoss(label_smoothing=0.1))


def stream_bandwidth(megabytes: int = 256) -> float:
    """GB/s of a large tensor copy (bytes read + written): the memory roof these steps sit under."""
    source = torch.randn(megabytes * 2**18)
    target = torch.empty_like(source)
    seconds = sum(call_times(lambda: target.copy_(source), calls=5, warmup=1))
    return 5 * 2 * source.numel() * 4 / seconds / 1e9


def profile_step(step: Work, top: int = 12) -> str:
    step()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(3):
            step()
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=top)


def runners_for(spec: NetworkSpec, ours: nn.Module, theirs: nn.Module, args: argparse.Namespace) -> dict[str, Work]:
    size, chans = spec.resolution, spec.in_chans
    runners = {"ours:native": train_step(ours, args.batch, size, chans),
               "ours:fused": train_step(build_model(spec), args.batch, size, chans, fused=True),
               "timm:eager": train_step(theirs, args.batch, size, chans)}
    if not args.no_compile:
        runners["ours:fused+compiled"] = train_step(build_model(spec), args.batch, size, chans, compile=True, fused=True)
        runners["timm:compiled"] = train_step(timm_same_architecture(spec), args.batch, size, chans, compile=True)
    return runners


def rows_from(samples: dict[str, list[float]], batch: int, madds: int, peak: dict) -> list[dict]:  # type: ignore[type-arg]
    reference = statistics.median(samples["timm:eager"])
    rows = []
    for name, seconds in samples.items():
        s = statistics.median(seconds)
        images = batch / s
        # A training step is ~3x the forward multiply-adds (forward, input and weight gradients).
        rate = 3 * madds * images
        rows.append({"contestant": name, "ms_per_step": 1000 * s, "images_per_s": images,
                     "vs_timm_eager": reference / s, "g_madds_per_s": rate / 1e9,
                     "pct_of_peak": 100 * rate / peak["peak_madds_per_s"] if peak["peak_madds_per_s"] else None,
                     "spread": (max(seconds) - min(seconds)) / s})
    return rows


def to_markdown(report: dict) -> str:  # type: ignore[type-arg]
    lines = [f"`{report['model']}` ({report['params']:,} params, {report['madds_per_image'] / 1e6:.1f} M MAdds/image) "
             f"training step, batch {report['batch']}, {report['resolution']} px, {report['threads']} threads, torch "
             f"{report['torch']}, allocator {report['allocator']}; same loop, alternating rounds. G MAdds/s counts 3x the "
             f"forward multiply-adds per image. Memory copy bandwidth here: {report['stream_copy_gb_per_s']:.1f} GB/s "
             "(read + write).", "",
             "| contestant | ms/step | images/s | vs timm eager | G MAdds/s | % of peak | spread |",
             "|---|---|---|---|---|---|---|"]
    for r in report["rows"]:
        pct = f"{r['pct_of_peak']:.1f}%" if r["pct_of_peak"] is not None else "-"
        lines.append(f"| {r['contestant']} | {r['ms_per_step']:.0f} | {r['images_per_s']:.0f} | "
                     f"{r['vs_timm_eager']:.2f}x | {r['g_madds_per_s']:.1f} | {pct} | {100 * r['spread']:.0f}% |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phi", type=float, default=1.0)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--min-time", type=float, default=4.0, help="seconds per contestant per round")
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--allocator", choices=["cache", "default"], default="cache",
                        help="cache: glibc keeps freed memory (what effnet's training loop does on CPU); "
                             "default: glibc's own behaviour (large blocks unmapped on free)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results",
                        help="results folder (default: benchmarks/results)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    spec = fashion_mnist_net(args.phi)
    ours, theirs = build_model(spec), timm_same_architecture(spec)
    n_ours = sum(p.numel() for p in ours.parameters())
    n_theirs = sum(p.numel() for p in theirs.parameters())
    if n_ours != n_theirs:
        raise SystemExit(f"timm's model has {n_theirs:,} parameters, ours {n_ours:,}: not the same architecture")
    start = time.time()

    def log(message: str) -> None:
        print(f"[{time.time() - start:5.0f}s] {message}", file=sys.stderr, flush=True)

    if args.allocator == "cache":
        keep_freed_cpu_memory()  # process-wide: every contestant gets it
    if not args.no_compile:
        log("compiling the training steps (a minute or two)")
    runners = runners_for(spec, ours, theirs, args)
    log(f"timing {', '.join(runners)}: {args.rounds} rounds of >= {args.min_time:g} s each, alternating")
    samples = time_alternately(runners, rounds=args.rounds, min_time=args.min_time, warmup=3)
    madds, peak = count(spec).madds, cpu_peak(args.threads)
    log("profiling our fused eager step")
    profile = profile_step(runners["ours:fused"])
    report = {"command": " ".join([sys.executable, *sys.argv]), "model": spec.name, "params": n_ours,
              "madds_per_image": madds, "batch": args.batch, "resolution": spec.resolution, "threads": args.threads,
              "torch": torch.__version__, "cpu": peak, "allocator": args.allocator,
              "stream_copy_gb_per_s": stream_bandwidth(), "rows": rows_from(samples, args.batch, madds, peak),
              "profile_ours_fused": profile}
    markdown = to_markdown(report)
    benchmark = "small_train_cpu" if args.allocator == "cache" else "small_train_cpu_default_allocator"
    path = write_result(benchmark, report, markdown + f"\nOur fused eager step, top operators:\n\n```\n{profile}```\n",
                        root=args.out, threads=args.threads)
    print(markdown)
    print(profile)
    print(f"written: {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

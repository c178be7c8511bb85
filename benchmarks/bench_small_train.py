"""Training throughput of the training issue's small Fashion-MNIST network (fmnist_s1 by
default): our model against timm's EfficientNet built with the same architecture, in the
same training loop, alternately in one process.

    .venv/bin/python benchmarks/bench_small_train.py [--phi 1] [--batch 256] [--threads 2]

timm's generator is given the same stages (its block strings), stem, head, activation, BN
settings and drop rates; its stem stride (fixed at 2 in timm) is set to 1 as ours is, and the
parameter counts are checked equal before anything is timed. Every contestant runs the same
step: forward, label-smoothed cross entropy, backward, TF RMSProp step, on a batch of 28 px
grey images in channels_last. Writes ``small_train_cpu.json`` and ``small_train_cpu.md`` with
images/s, the ratio to timm's eager speed, the multiply-adds per second against the CPU's
peak, and a profile of our eager step (where the time goes).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import torch
from torch import nn

from effnet.counting import count
from effnet.kernels import use_fused_kernels
from effnet.bench import cpu_peak, time_alternately
from effnet.model import build_model
from effnet.spec import NetworkSpec
from effnet.allocator import keep_freed_cpu_memory
from effnet.train.optim import build_optimizer
from effnet.zoo.small import fashion_mnist_net


def timm_same_architecture(spec: NetworkSpec) -> nn.Module:
    """timm's EfficientNet class with ``spec``'s stages, stem, head and settings."""
    from timm.models._efficientnet_builder import decode_arch_def
    from timm.models.efficientnet import EfficientNet

    arch = []
    for stage in spec.stages:
        if stage.kind != "mbconv":
            raise ValueError(f"no timm block for stage kind {stage.kind}")
        # timm's "ds" block is MBConv without the expansion conv, as in the official B0 stage 1.
        kind = "ds" if stage.expand_ratio == 1 else "ir"
        text = f"{kind}_r{stage.repeats}_k{stage.kernel}_s{stage.stride}"
        text += f"_e{stage.expand_ratio:g}" if kind == "ir" else ""
        text += f"_c{stage.out_channels}" + (f"_se{stage.se_ratio:g}" if stage.se_ratio else "")
        arch.append([text])
    model = EfficientNet(
        decode_arch_def(arch), num_classes=spec.num_classes, num_features=spec.head.channels,
        in_chans=spec.in_chans, stem_size=spec.stem.channels, fix_stem=True, act_layer=nn.SiLU,
        norm_layer=partial(nn.BatchNorm2d, eps=spec.bn_eps, momentum=spec.bn_momentum),
        round_chs_fn=lambda c: c, drop_rate=spec.dropout, drop_path_rate=spec.drop_path_rate)
    old = model.conv_stem
    model.conv_stem = nn.Conv2d(old.in_channels, old.out_channels, old.kernel_size, stride=spec.stem.stride,
                                padding=old.kernel_size[0] // 2, bias=False)
    return model


def train_step(model: nn.Module, batch: int, size: int, in_chans: int, *, compile: bool = False,  # type: ignore[no-untyped-def]
               fused: bool = False):
    model = model.train().to(memory_format=torch.channels_last)
    if fused:
        use_fused_kernels(model)
    optimizer = build_optimizer("rmsprop_tf", model, 0.01)
    forward = torch.compile(model) if compile else model
    criterion = nn.CrossEntropyLoss(label_smoothing=0.1)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch, in_chans, size, size, generator=generator).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,), generator=generator)

    def step() -> None:
        loss = criterion(forward(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def stream_bandwidth(megabytes: int = 256) -> float:
    """GB/s of a large tensor copy (bytes read + written): the memory roof these steps sit under."""
    source = torch.randn(megabytes * 2**18)
    target = torch.empty_like(source)
    target.copy_(source)
    start = time.perf_counter()
    for _ in range(5):
        target.copy_(source)
    return 5 * 2 * source.numel() * 4 / (time.perf_counter() - start) / 1e9


def profile_step(step, top: int = 12) -> str:  # type: ignore[no-untyped-def]
    step()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(3):
            step()
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=top)


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
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    spec = fashion_mnist_net(args.phi)
    size = spec.resolution
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
    runners = {"ours:native": train_step(ours, args.batch, size, spec.in_chans),
               "ours:fused": train_step(build_model(spec), args.batch, size, spec.in_chans, fused=True),
               "timm:eager": train_step(theirs, args.batch, size, spec.in_chans)}
    if not args.no_compile:
        log("compiling the training steps (a minute or two)")
        runners["ours:fused+compiled"] = train_step(build_model(spec), args.batch, size, spec.in_chans,
                                                    compile=True, fused=True)
        runners["timm:compiled"] = train_step(timm_same_architecture(spec), args.batch, size, spec.in_chans,
                                              compile=True)
    log(f"timing {', '.join(runners)}: {args.rounds} rounds of >= {args.min_time:g} s each, alternating")
    samples = time_alternately(runners, rounds=args.rounds, min_time=args.min_time, warmup=3)
    madds = count(spec).madds
    peak = cpu_peak(args.threads)
    reference = statistics.median(samples["timm:eager"])
    rows = []
    for name, seconds in samples.items():
        s = statistics.median(seconds)
        images = args.batch / s
        # A training step is ~3x the forward multiply-adds (forward, input and weight gradients).
        rate = 3 * madds * images
        rows.append({"contestant": name, "ms_per_step": 1000 * s, "images_per_s": images,
                     "vs_timm_eager": reference / s, "g_madds_per_s": rate / 1e9,
                     "pct_of_peak": 100 * rate / peak["peak_madds_per_s"] if peak["peak_madds_per_s"] else None,
                     "spread": (max(seconds) - min(seconds)) / s})
    log("profiling our fused eager step")
    profile = profile_step(runners["ours:fused"])
    report = {"command": " ".join([sys.executable, *sys.argv]), "model": spec.name, "params": n_ours,
              "madds_per_image": madds, "batch": args.batch, "resolution": size, "threads": args.threads,
              "torch": torch.__version__, "cpu": peak, "allocator": args.allocator,
              "stream_copy_gb_per_s": stream_bandwidth(), "rows": rows, "profile_ours_fused": profile}
    lines = [f"`{spec.name}` ({n_ours:,} params, {madds / 1e6:.1f} M MAdds/image) training step, batch "
             f"{args.batch}, {size} px, {args.threads} threads, torch {torch.__version__}, allocator "
             f"{args.allocator}; same loop, alternating rounds. G MAdds/s counts 3x the forward multiply-adds "
             f"per image. Memory copy bandwidth here: {report['stream_copy_gb_per_s']:.1f} GB/s (read + write).", "",
             "| contestant | ms/step | images/s | vs timm eager | G MAdds/s | % of peak | spread |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        pct = f"{r['pct_of_peak']:.1f}%" if r["pct_of_peak"] is not None else "-"
        lines.append(f"| {r['contestant']} | {r['ms_per_step']:.0f} | {r['images_per_s']:.0f} | "
                     f"{r['vs_timm_eager']:.2f}x | {r['g_madds_per_s']:.1f} | {pct} | {100 * r['spread']:.0f}% |")
    markdown = "\n".join(lines) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "small_train_cpu" if args.allocator == "cache" else "small_train_cpu_default_allocator"
    (args.out / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / f"{stem}.md").write_text(markdown + f"\nOur fused eager step, top operators:\n\n```\n{profile}```\n")
    print(markdown)
    print(profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""EfficientNet-B0 at 224 px on 2 CPU threads: our paths against timm and torchvision.

    python benchmarks/bench_b0.py [--quick] [--out benchmarks/results]

Runs every contestant alternately in one process (see ``effnet.bench``), then
measures training memory in fresh subprocesses, and writes ``b0_cpu.json`` and
``b0_cpu.md``. Ratios are the numbers to quote; absolute numbers depend on the machine and
on whatever else runs on it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from effnet.bench import Report, cpu_peak, run_bench, to_markdown, training_memory
from effnet.bench import PEERS, TRAIN_PATHS, Setting
from effnet.train.allocator import keep_freed_cpu_memory

INFERENCE = ("eager", "channels_last", "fused", "compiled", "onnx-fp32", "onnx-int8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="1 round, no compile, no memory (a smoke run)")
    parser.add_argument("--no-compile", action="store_true", help="leave out the torch.compile path")
    parser.add_argument("--memory-only", action="store_true", help="only the training-memory subprocesses")
    parser.add_argument("--train-only", action="store_true",
                        help="only the training step, 5 rounds of >= 8 s per contestant (the step varies most)")
    parser.add_argument("--allocator", choices=["cache", "default"], default="cache",
                        help="cache: glibc keeps freed memory, for every contestant (what effnet's CPU training "
                             "loop does); default: glibc unmaps large blocks on free")
    args = parser.parse_args()
    if args.allocator == "cache":
        keep_freed_cpu_memory()
    if args.memory_only:
        return memory_only(args)
    if args.train_only:
        return train_only(args)
    inference = tuple(p for p in INFERENCE if not ((args.quick or args.no_compile) and p == "compiled"))
    start = time.time()
    report = run_bench(Setting("efficientnet_b0", resolution=224, threads=args.threads), inference=inference,
                       rounds=1 if args.quick else 3, min_time=0.5 if args.quick else 2.0,
                       memory=not args.quick, profile=not args.quick,
                       log=lambda m: print(f"[{time.time() - start:6.0f}s] {m}", file=sys.stderr, flush=True))
    args.out.mkdir(parents=True, exist_ok=True)
    markdown = to_markdown(report)
    (args.out / "b0_cpu.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    (args.out / "b0_cpu.md").write_text(markdown + (f"\n```\n{report.profile}```\n" if report.profile else ""))
    print(markdown)
    if report.profile:
        print(report.profile)


def train_only(args: argparse.Namespace) -> None:
    start = time.time()
    report = run_bench(Setting("efficientnet_b0", resolution=224, threads=args.threads), inference=(), latency_batch=0,
                       throughput_batch=0, rounds=5, min_time=8.0, memory=False,
                       log=lambda m: print(f"[{time.time() - start:6.0f}s] {m}", file=sys.stderr, flush=True))
    _write(report, args.out, "b0_cpu_train" if args.allocator == "cache" else "b0_cpu_train_default_allocator")


def _write(report: Report, out: Path, stem: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    markdown = to_markdown(report)
    (out / f"{stem}.md").write_text(markdown)
    print(markdown)


def memory_only(args: argparse.Namespace) -> None:
    setting = Setting("efficientnet_b0", resolution=224, threads=args.threads)
    rows = training_memory(setting, TRAIN_PATHS, PEERS[setting.model], 32,
                           log=lambda m: print(m, file=sys.stderr, flush=True))
    report = Report(setting, cpu_peak(args.threads), [], rows, ["training memory only"])
    _write(report, args.out, "b0_cpu_memory")


if __name__ == "__main__":
    main()

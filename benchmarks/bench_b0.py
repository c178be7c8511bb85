"""EfficientNet-B0 at 224 px on 2 CPU threads: our paths against timm and torchvision.

    python benchmarks/bench_b0.py [--quick] [--out benchmarks/results]

Best path against best path: every one of our inference paths (eager, channels_last, BN
folded, compiled, onnxruntime fp32/int8, OpenVINO fp32/bf16/int8) beside every path a timm or
torchvision user can assemble by hand for the same network (eager, channels_last,
torch.compile, torch.onnx.export -> onnxruntime fp32 and int8 with our quantiser and
calibration images, -> OpenVINO fp32, bf16 and NNCF int8), run alternately in one process
(see ``effnet.bench``); then where onnxruntime spends its time in our fp32 and int8 graphs
(onnxruntime's profiler, against the CPU's peak for each precision), and training memory in
fresh subprocesses. Ratios are the numbers to quote; absolute numbers depend on the machine
and on whatever else runs on it.

Writes through ``effnet.bench.results`` under OUT (default benchmarks/results): ``b0_cpu/``
(``b0_cpu_quick/`` with --quick: a smoke run is not the benchmark), ``b0_cpu_train/``
(--train-only; ``b0_cpu_train_default_allocator/`` with --allocator default),
``b0_cpu_memory/`` (--memory-only) and ``b0_cpu_profile/`` (--profile-only).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from effnet.bench import INFERENCE_PATHS, PEER_PATHS, PEERS, TRAIN_PATHS, Report, Setting, cpu_peak, run_bench
from effnet.bench import to_markdown, training_memory
from effnet.bench.contestants import export_peer_onnx, peer_module
from effnet.bench.onnx_profile import profile_markdown, profile_onnx
from effnet.bench.results import write_result
from effnet.deploy.export import export_model
from effnet.deploy.quantize import quantize_onnx
from effnet.factory import create_model
from effnet.allocator import keep_freed_cpu_memory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results",
                        help="results folder (default: benchmarks/results)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="1 round, no compile, no memory (a smoke run)")
    parser.add_argument("--no-compile", action="store_true", help="leave out the torch.compile paths")
    parser.add_argument("--no-train", action="store_true", help="inference only (no training step, no memory)")
    parser.add_argument("--memory-only", action="store_true", help="only the training-memory subprocesses")
    parser.add_argument("--train-only", action="store_true",
                        help="only the training step, 3 rounds of >= 8 s per contestant (the step varies most)")
    parser.add_argument("--profile-only", action="store_true",
                        help="only onnxruntime's profile of our fp32 graph beside timm's exported ones, at batch 1 "
                             "and 32 (b0_cpu_profile: where each spends its time, against the peak)")
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
    if args.profile_only:
        return profile_only(args)
    skip = {"compiled"} if args.quick or args.no_compile else set()
    inference = tuple(p for p in INFERENCE_PATHS if p not in skip)
    peer_paths = tuple(p for p in PEER_PATHS if p not in skip)
    start = time.time()
    setting = Setting("efficientnet_b0", resolution=224, threads=args.threads)
    report = run_bench(setting, inference=inference, peer_paths=peer_paths, training=() if args.no_train else TRAIN_PATHS,
                       rounds=1 if args.quick else 3, min_time=0.5 if args.quick else 1.5,
                       memory=not (args.quick or args.no_train), profile=False,
                       log=lambda m: print(f"[{time.time() - start:6.0f}s] {m}", file=sys.stderr, flush=True))
    markdown = to_markdown(report) + "\n" + onnx_profiles(setting, report)
    print(markdown)
    written = write_result("b0_cpu_quick" if args.quick else "b0_cpu", report.to_dict(), markdown, root=args.out,
                           threads=args.threads)
    print(f"written: {written}", file=sys.stderr)


def onnx_profiles(setting: Setting, report: Report, batch: int = 32) -> str:
    """Where onnxruntime's time goes in our B0 graph, fp32 and int8, at ``batch`` as one
    session run (the plan's micro-batches show the same kinds of work, each smaller)."""
    model = create_model(setting.model).eval()
    x = np.random.default_rng(0).standard_normal((batch, 3, setting.resolution, setting.resolution), dtype=np.float32)
    sections = []
    with tempfile.TemporaryDirectory() as tmp:
        fp32, int8 = Path(tmp) / "b0.onnx", Path(tmp) / "b0_int8.onnx"
        export_model(model, fp32, resolution=setting.resolution)
        quantize_onnx(fp32, int8, x[:16])
        for name, path, peak in (("fp32", fp32, report.machine.get("peak_madds_per_s")),
                                 ("int8", int8, report.machine.get("int8_peak_madds_per_s"))):
            rows = profile_onnx(path, x, threads=setting.threads, runs=2)
            sections.append(f"Where onnxruntime's time goes, our {name} graph, batch {batch} in one run "
                            f"(peak for {name}: {(peak or 0) / 1e9:.0f} G MAdds/s):\n\n" + profile_markdown(rows, peak))  # type: ignore[operator]
    return "\n".join(sections)


def profile_only(args: argparse.Namespace, batches: tuple[int, ...] = (1, 32)) -> None:
    """Our fp32 graph beside the peers' (timm -> torch.onnx.export, as its users do) in
    onnxruntime's profiler, one session on every thread: the same kinds of work, and how long
    each takes in each graph, explain a latency ratio."""
    setting = Setting("efficientnet_b0", resolution=224, threads=args.threads)
    peak = cpu_peak(setting.threads)["peak_madds_per_s"]
    sections = [f"`efficientnet_b0` at 224 px, fp32, onnxruntime with {setting.threads} threads, one session per "
                f"graph (peak estimate {(peak or 0) / 1e9:.0f} G MAdds/s). Rows: onnxruntime's profiler, grouped by "
                "kind of work; ms per run (the profiler's own overhead included, so totals run above the "
                "benchmark's).\n"]
    rng = np.random.default_rng(0)
    profiles: dict[str, list[dict[str, object]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        graphs = {"ours": Path(tmp) / "ours.onnx"}
        export_model(create_model(setting.model).eval(), graphs["ours"], resolution=setting.resolution)
        for peer in PEERS[setting.model]:
            if peer.startswith("timm:"):
                graphs[peer] = Path(tmp) / f"{peer.replace(':', '_')}.onnx"
                export_peer_onnx(peer_module(peer, setting), graphs[peer], setting)
        for batch in batches:
            x = rng.standard_normal((batch, 3, setting.resolution, setting.resolution), dtype=np.float32)
            for name, path in graphs.items():
                rows = profile_onnx(path, x, threads=setting.threads, runs=10 if batch == 1 else 2)
                profiles[f"{name}, batch {batch}"] = rows
                total = sum(float(r["ms"]) for r in rows)  # type: ignore[arg-type]
                sections.append(f"### {name}, batch {batch}: {total:.1f} ms per run\n\n" + profile_markdown(rows, peak))
    markdown = "\n".join(sections)
    print(markdown)
    record = {"model": setting.model, "resolution": setting.resolution, "threads": setting.threads,
              "peak_madds_per_s": peak, "profiles": profiles}
    print(f"written: {write_result('b0_cpu_profile', record, markdown, root=args.out, threads=setting.threads)}",
          file=sys.stderr)


def train_only(args: argparse.Namespace) -> None:
    start = time.time()
    # Each peer eager (channels_last) and compiled (inductor, forward and backward) unless --no-compile.
    report = run_bench(Setting("efficientnet_b0", resolution=224, threads=args.threads), inference=(), latency_batch=0,
                       throughput_batch=0, rounds=3, min_time=8.0, memory=False,
                       peer_training=("channels_last",) if args.no_compile else ("channels_last", "compiled"),
                       log=lambda m: print(f"[{time.time() - start:6.0f}s] {m}", file=sys.stderr, flush=True))
    _write(report, args.out, "b0_cpu_train" if args.allocator == "cache" else "b0_cpu_train_default_allocator")


def _write(report: Report, out: Path, benchmark: str) -> None:
    markdown = to_markdown(report)
    print(markdown)
    written = write_result(benchmark, report.to_dict(), markdown, root=out, threads=report.setting.threads)
    print(f"written: {written}", file=sys.stderr)


def memory_only(args: argparse.Namespace) -> None:
    setting = Setting("efficientnet_b0", resolution=224, threads=args.threads)
    rows = training_memory(setting, TRAIN_PATHS, PEERS[setting.model], 32,
                           log=lambda m: print(m, file=sys.stderr, flush=True))
    report = Report(setting, cpu_peak(args.threads), [], rows, ["training memory only"])
    _write(report, args.out, "b0_cpu_memory")


if __name__ == "__main__":
    main()

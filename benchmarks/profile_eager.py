"""Where eager inference spends its time: our B0 beside timm's, same weights, channels_last,
``torch.inference_mode()``, profiled op by op (torch.profiler) and timed alternately.

    .venv/bin/python benchmarks/profile_eager.py [--batches 32 1] [--threads 2] [--rounds 5]

Two pairs, each sharing one set of random weights (timm's state dict through effnet's
converter), logits checked equal: ours with TF SAME padding against ``tf_efficientnet_b0``,
ours with symmetric padding against ``efficientnet_b0``. A third contestant per pair is ours
with every op out of place (``overwrite_allowed`` patched off: the layers as they were before
inference reused its buffers), so the gain shows in one process. Per contestant: ms per
batch (median of per-round medians), the ratio to the peer, the minor page faults per
forward (the kernel mapping and zeroing fresh memory: large blocks come from ``mmap`` and
go back on free; it depends on glibc's adaptive threshold, so on what ran before), the
activation memory a forward newly allocates (counted op by op: exact, whatever the load),
and the profiler's ms per forward by op. Writes ``results/profile_eager/``.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from unittest import mock

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile
from torch.utils._python_dispatch import TorchDispatchMode

from effnet import create_model
from effnet.bench.results import write_result
from effnet.deploy.timing import time_alternately
from effnet.nn import layers
from effnet.weights import LoadedWeights, load_weights

PAIRS = {"same": "tf_efficientnet_b0", "symmetric": "efficientnet_b0"}  # our padding -> timm's twin


@contextmanager
def out_of_place() -> Iterator[None]:
    """Every layer out of place, as with autograd on (the layers before in-place inference)."""
    with mock.patch.object(layers, "overwrite_allowed", lambda: False):
        yield


def models(padding: str) -> dict[str, tuple[nn.Module, Callable[[], object]]]:
    """ours, ours out of place and the timm twin, one set of weights, channels_last, eval."""
    import timm

    peer = timm.create_model(PAIRS[padding], pretrained=False).eval()
    weights = LoadedWeights(peer.state_dict(), None, "random timm weights", "timm")
    ours = load_weights(create_model("efficientnet_b0", padding=padding), weights).eval()
    ours, peer = ours.to(memory_format=torch.channels_last), peer.to(memory_format=torch.channels_last)
    return {f"ours ({padding})": (ours, nullcontext),
            f"ours ({padding}, out of place)": (ours, out_of_place),
            f"timm:{PAIRS[padding]}": (peer, nullcontext)}


def runner(model: nn.Module, context: Callable[[], object], x: torch.Tensor) -> Callable[[], torch.Tensor]:
    def run() -> torch.Tensor:
        with torch.inference_mode(), context():  # type: ignore[operator]
            return model(x)
    return run


class FreshActivations(TorchDispatchMode):
    """GiB of 4-D outputs (spatial extent > 1) that share no storage with an input: the
    activation memory a forward asks malloc for, in all and in blocks over 32 MiB (glibc's
    largest mmap threshold: always new pages). A count that load does not move."""

    def __init__(self) -> None:
        super().__init__()
        self.gib, self.mmap_gib = 0.0, 0.0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        if isinstance(out, torch.Tensor) and out.dim() == 4 and out.shape[-1] * out.shape[-2] > 1:
            if out.untyped_storage().data_ptr() not in [a.untyped_storage().data_ptr() for a in args
                                                        if isinstance(a, torch.Tensor)]:
                size = out.numel() * out.element_size() / 2**30
                self.gib += size
                self.mmap_gib += size if size > 1 / 32 else 0.0
        return out


def fresh_activations(run: Callable[[], object]) -> dict[str, float]:
    with FreshActivations() as mode:
        run()
    return {"gib": mode.gib, "over_32_mib_gib": mode.mmap_gib}


def faults_per_call(run: Callable[[], object], calls: int = 3) -> int:
    """Minor page faults per call, after one untimed call."""
    run()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(calls):
        run()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) // calls


def op_profile(run: Callable[[], object], calls: int = 3) -> tuple[dict[str, float], list[dict[str, object]]]:
    """ms per call by op (self CPU time), and the 12 costliest (op, input shapes) rows."""
    run()
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(calls):
            run()
    by_op = {e.key: e.self_cpu_time_total / 1e3 / calls for e in prof.key_averages() if e.self_cpu_time_total > 0}
    shapes = sorted(prof.key_averages(group_by_input_shape=True), key=lambda e: -e.self_cpu_time_total)[:12]
    rows = [{"op": e.key, "input_shapes": str(e.input_shapes), "ms": e.self_cpu_time_total / 1e3 / calls,
             "calls": e.count // calls} for e in shapes]
    return by_op, rows


def measure_pair(padding: str, batch: int, args: argparse.Namespace) -> dict[str, object]:
    contestants = models(padding)
    x = torch.randn(batch, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    x = x.contiguous(memory_format=torch.channels_last)
    runs = {name: runner(model, context, x) for name, (model, context) in contestants.items()}
    outs = [run() for run in runs.values()]
    max_diff = max(float((out - outs[-1]).abs().max()) for out in outs[:-1])
    if max_diff > 1e-4:
        raise SystemExit(f"{padding}: logits differ from timm's by {max_diff:.3g}: not the same network")
    samples = time_alternately(runs, rounds=args.rounds, min_time=args.min_time)
    peer = f"timm:{PAIRS[padding]}"
    ms = {name: statistics.median(s) * 1e3 for name, s in samples.items()}
    rows = []
    for name, run in runs.items():
        by_op, by_shape = op_profile(run)
        rows.append({"contestant": name, "ms_per_batch": ms[name], "images_per_s": batch / ms[name] * 1e3,
                     "speed_vs_peer": ms[peer] / ms[name], "page_faults_per_forward": faults_per_call(run),
                     "fresh_activations_per_forward": fresh_activations(run),
                     "round_ms": [t * 1e3 for t in samples[name]], "profile_ms_by_op": by_op,
                     "profile_top_shapes": by_shape})
    return {"padding": padding, "peer": peer, "batch": batch, "max_abs_logit_diff": max_diff, "rows": rows}


def op_table(pair: dict[str, object], top: int = 14) -> str:
    """The ops side by side, ms per forward (profiler's self CPU time), costliest first."""
    rows = pair["rows"]  # type: ignore[index]
    names = [row["contestant"] for row in rows]
    ops: dict[str, list[float]] = {}
    for i, row in enumerate(rows):
        for op, t in row["profile_ms_by_op"].items():
            ops.setdefault(op, [0.0] * len(rows))[i] = t
    ranked = sorted(ops.items(), key=lambda item: -max(item[1]))[:top]
    lines = ["| op | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    lines += [f"| `{op}` | " + " | ".join(f"{t:.1f}" for t in times) + " |" for op, times in ranked]
    totals = [sum(row["profile_ms_by_op"].values()) for row in rows]
    lines.append("| all ops | " + " | ".join(f"{t:.1f}" for t in totals) + " |")
    return "\n".join(lines)


def to_markdown(report: dict[str, object]) -> str:
    out = [f"Eager inference, B0 at 224 px, channels_last, `torch.inference_mode()`, {report['threads']} threads, "
           f"{report['rounds']} alternating rounds of >= {report['min_time']:g} s; load average before "
           f"{report['load_before']}, after {report['load_after']} (1, 5, 15 min).", ""]
    for pair in report["pairs"]:  # type: ignore[attr-defined]
        out += [f"### batch {pair['batch']}, {pair['padding']} padding against {pair['peer']} "
                f"(same weights, max logit diff {pair['max_abs_logit_diff']:.1g})", "",
                "| contestant | ms per batch | images/s | speed vs timm | page faults per forward "
                "| new activation GiB per forward (in blocks > 32 MiB) |", "|---|---|---|---|---|---|"]
        out += [f"| {r['contestant']} | {r['ms_per_batch']:.1f} | {r['images_per_s']:.1f} | {r['speed_vs_peer']:.2f}x | "
                f"{r['page_faults_per_forward']:,} | {r['fresh_activations_per_forward']['gib']:.2f} "
                f"({r['fresh_activations_per_forward']['over_32_mib_gib']:.2f}) |" for r in pair["rows"]]
        out += ["", "Profiler, ms per forward (self CPU time; the profiler's overhead included):", "",
                op_table(pair), ""]
    return "\n".join(out)


def load_average() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, nargs="+", default=[32, 1])
    parser.add_argument("--paddings", nargs="+", choices=list(PAIRS), default=list(PAIRS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--min-time", type=float, default=2.0, help="seconds per contestant per round")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results",
                        help="results folder (default: benchmarks/results)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    report: dict[str, object] = {"command": " ".join([sys.executable, *sys.argv]), "threads": args.threads,
                                 "rounds": args.rounds, "min_time": args.min_time, "load_before": load_average()}
    pairs = []
    for batch in args.batches:
        for padding in args.paddings:
            print(f"batch {batch}, {padding} padding ...", file=sys.stderr, flush=True)
            pairs.append(measure_pair(padding, batch, args))
    report.update(pairs=pairs, load_after=load_average())
    markdown = to_markdown(report)
    path = write_result("profile_eager", report, markdown, root=args.out, threads=args.threads)
    print(markdown)
    print(f"written: {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

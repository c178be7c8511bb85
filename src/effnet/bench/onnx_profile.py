"""Where an onnxruntime model spends its time: onnxruntime's own profiler (per node, with
input and output shapes), grouped into the kinds of work an EfficientNet does (pointwise 1x1
convs, depthwise convs, the SE block's tiny convs, the stem, everything else), each with its
multiply-adds and the rate it reached against the CPU's peak for that precision.

This is the profile that explains a speed: 1x1 convs are dense matrix products and can run
near the peak; depthwise convs and elementwise ops move far more bytes per multiply-add and
are bound by memory, whatever the runtime.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

from ..deploy.runtime import require_onnxruntime, session_options

CONVS = {"Conv", "FusedConv", "NhwcConv", "NhwcFusedConv", "QLinearConv", "ConvInteger"}


def _shapes(entries: list[dict]) -> list[list[int]]:
    return [next(iter(entry.values())) for entry in entries]


def _kind(op: str, inputs: list[list[int]], output: list[int]) -> tuple[str, float]:
    """(kind of work, multiply-adds of this node for the whole batch; 0 where unknown)."""
    if op not in CONVS or not inputs or len(output) != 4:
        return ("other: " + op, 0.0)
    if op == "QLinearConv" and len(inputs[3]) != 4:
        return _prepacked_int8_kind(inputs[0], output)
    weight = inputs[3] if op == "QLinearConv" else inputs[1]
    if len(weight) != 4:
        return ("other: " + op, 0.0)
    out_channels, per_group, kh, kw = weight
    n, _, h, w = output
    madds = float(n * out_channels * h * w * per_group * kh * kw)
    if per_group == 1 and kh * kw > 1:
        return ("depthwise conv", madds)
    if kh == kw == 1:
        return ("SE convs (1x1 on pooled maps)" if h == w == 1 else "pointwise 1x1 conv", madds)
    return ("regular conv (stem, fused MBConv)", madds)


def _prepacked_int8_kind(x: list[int], output: list[int]) -> tuple[str, float]:
    """onnxruntime's x86 int8 convs run NHWC with their weights pre-packed out of the
    profile's view: the kind follows from the channel counts (a depthwise conv keeps them;
    its kernel size, hence its multiply-adds, is not shown)."""
    if len(x) != 4:
        return ("int8 conv", 0.0)
    n, h, w, c_out = output
    c_in = x[3]
    if h == w == 1:
        return ("SE convs (1x1 on pooled maps)", float(n * c_in * c_out))
    if c_in == 3:
        return ("regular conv (stem, fused MBConv)", float(n * h * w * c_out * 3 * 9))
    if c_in == c_out:
        return ("depthwise conv", 0.0)
    return ("pointwise 1x1 conv", float(n * h * w * c_in * c_out))


def profile_onnx(path: str | Path, images: np.ndarray, *, threads: int = 2, runs: int = 3) -> list[dict[str, object]]:
    """Run ``path`` on ``images`` ``runs`` times under onnxruntime's profiler (after one
    warm-up run, not counted) and return one row per kind of work: milliseconds per run,
    share of the time, G multiply-adds per run and the G multiply-adds/s reached."""
    ort = require_onnxruntime()
    with tempfile.TemporaryDirectory(prefix="effnet-ort-profile-") as tmp:
        options = session_options(threads)
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / "profile")
        session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        feed = {session.get_inputs()[0].name: np.ascontiguousarray(images, dtype=np.float32)}
        for _ in range(runs + 1):
            session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text())
    nodes = [e for e in events if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time")]
    # Drop the warm-up run: the first occurrence of every node.
    per_node: dict[str, list[dict]] = defaultdict(list)
    for event in nodes:
        per_node[event["name"]].append(event)
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for calls in per_node.values():
        for event in calls[1:]:
            args = event.get("args", {})
            kind, madds = _kind(args.get("op_name", "?"), _shapes(args.get("input_type_shape", [])),
                                (_shapes(args.get("output_type_shape", [])) or [[]])[0])
            totals[kind][0] += event["dur"] / 1e3 / runs
            totals[kind][1] += madds / runs
    # Small "other" kinds (reorders, pads, sigmoid, ...) are summed beside the big ones.
    total_ms = sum(ms for ms, _ in totals.values()) or math.nan
    rows = [{"kind": kind, "ms": ms, "share": ms / total_ms, "g_madds": madds / 1e9,
             "g_madds_per_s": madds / 1e9 / (ms / 1e3) if ms and madds else None}
            for kind, (ms, madds) in totals.items()]
    return sorted(rows, key=lambda row: -row["ms"])  # type: ignore[operator]


def profile_markdown(rows: list[dict[str, object]], peak_madds_per_s: float | None, *, top: int = 10) -> str:
    lines = ["| kind of work | ms per run | share | G MAdds | G MAdds/s | % of peak |", "|---|---|---|---|---|---|"]
    shown, rest = rows[:top], rows[top:]
    if rest:
        shown = [*shown, {"kind": f"{len(rest)} other kinds", "ms": sum(r["ms"] for r in rest),  # type: ignore[misc]
                          "share": sum(r["share"] for r in rest), "g_madds": 0.0, "g_madds_per_s": None}]  # type: ignore[misc]
    for row in shown:
        rate = row["g_madds_per_s"]
        pct = f"{100 * rate * 1e9 / peak_madds_per_s:.0f}%" if rate and peak_madds_per_s else "-"  # type: ignore[operator]
        lines.append(f"| {row['kind']} | {row['ms']:.1f} | {row['share']:.0%} | {row['g_madds']:.2f} | "
                     f"{rate:.1f} | {pct} |" if rate else
                     f"| {row['kind']} | {row['ms']:.1f} | {row['share']:.0%} | - | - | - |")
    return "\n".join(lines) + "\n"


__all__ = ["profile_markdown", "profile_onnx"]

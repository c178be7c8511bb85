"""A benchmark's results: rows of speed and memory, speed-ups over each peer library's fastest
contestant, the machine's peak estimate, and the report as markdown."""

from __future__ import annotations

import math
import platform
import statistics
from dataclasses import asdict, dataclass, field

import torch

from ..device import cpu_info
from .contestants import Setting


@dataclass
class Row:
    section: str            # "latency" (batch 1), "throughput", "train"
    contestant: str
    batch: int
    seconds: float          # median seconds per call (per step for "train")
    spread: float           # (max - min) / median over rounds: how noisy this number is
    images_per_s: float
    speedup: dict[str, float] = field(default_factory=dict)  # peer library -> its fastest time / ours, same precision
    madds_per_s: float | None = None
    precision: str = "fp32"  # what ran: fp32, bf16 or int8 (bf16 asked for but unsupported runs fp32)


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
    headline: list[dict[str, object]] = field(default_factory=list)  # best against best (:func:`best_vs_best`)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def cpu_peak(threads: int) -> dict[str, object]:
    """An estimate of the fp32 multiply-add peak of ``threads`` cores, from the CPU flags:
    AVX-512 = 16 fp32 lanes, AVX2 = 8; two FMA units per core (server cores since Skylake-SP;
    one on some parts, which halves the peak); the clock is the nominal one."""
    info = cpu_info()
    flags, mhz = info.flags, info.mhz
    lanes = 16 if "avx512f" in flags else 8 if "avx2" in flags else 4
    fma_units = 2 if "fma" in flags else 1
    peak = threads * mhz * 1e6 * lanes * fma_units if mhz else None
    vnni = "avx512_vnni" in flags or "avx_vnni" in flags
    bf16 = "avx512_bf16" in flags or "amx_bf16" in flags
    # int8: VNNI does 4 multiply-adds per 32-bit lane in one instruction (4x fp32); AVX2 alone
    # needs two (vpmaddubsw + vpmaddwd) for 4, about 2x. bf16 (AVX512_BF16 vdpbf16ps): 2x.
    return {"processor": platform.processor() or platform.machine(), "model": info.model, "mhz": mhz,
            "threads": threads, "fp32_lanes": lanes, "fma_units_assumed": fma_units, "peak_madds_per_s": peak,
            "int8_peak_madds_per_s": peak * (4 if vnni else 2) if peak else None,
            "bf16_peak_madds_per_s": peak * 2 if peak and bf16 else None,
            "flags": sorted(f for f in flags if f.startswith(("avx", "amx", "fma"))),
            "amx": "amx_tile" in flags, "avx512_vnni": "avx512_vnni" in flags, "avx512_bf16": bf16}


def library_of(contestant: str) -> str:
    return contestant.split(":", 1)[0]


def speedups(rows: list[Row]) -> None:
    """Each row's speed-up over each peer library's fastest contestant of the same section
    and precision (fp32 against fp32, int8 against int8): equal arithmetic, equal accuracy."""
    for section, precision in {(row.section, row.precision) for row in rows}:
        group = [row for row in rows if row.section == section and row.precision == precision]
        for library in sorted({library_of(row.contestant) for row in group} - {"ours"}):
            fastest = min(row.seconds / row.batch for row in group if library_of(row.contestant) == library)
            for row in group:
                row.speedup[library] = fastest / (row.seconds / row.batch)


def best_vs_best(rows: list[Row]) -> list[dict[str, object]]:
    """Per section and peer library: our fastest contestant against the peer's fastest, at
    each precision and over all of them ("any")."""
    out = []
    for section in dict.fromkeys(row.section for row in rows):
        group = [row for row in rows if row.section == section]
        for library in sorted({library_of(row.contestant) for row in group} - {"ours"}):
            for precision in ("fp32", "bf16", "int8", "any"):
                ours = [r for r in group if library_of(r.contestant) == "ours" and precision in ("any", r.precision)]
                peer = [r for r in group if library_of(r.contestant) == library and precision in ("any", r.precision)]
                if not ours or not peer:
                    continue
                a, b = min(ours, key=lambda r: r.seconds / r.batch), min(peer, key=lambda r: r.seconds / r.batch)
                out.append({"section": section, "precision": precision, "peer": library, "ours": a.contestant,
                            "ours_images_per_s": a.images_per_s, "ours_ms": a.seconds * 1e3, "best_peer": b.contestant,
                            "peer_images_per_s": b.images_per_s, "peer_ms": b.seconds * 1e3,
                            "ratio": a.images_per_s / b.images_per_s})
    return out


def rows_from(section: str, batch: int, samples: dict[str, list[float]], madds: int,
              precision: dict[str, str] | None = None) -> list[Row]:
    rows = []
    for name, values in samples.items():
        median = statistics.median(values)
        rows.append(Row(section, name, batch, median, (max(values) - min(values)) / median, batch / median,
                        madds_per_s=madds * batch / median, precision=(precision or {}).get(name, "fp32")))
    return rows


def to_markdown(report: Report) -> str:
    """The report as markdown tables: speed (with speed-ups over each peer library's fastest
    contestant in the same section) and training memory."""
    libraries = sorted({lib for row in report.rows for lib in row.speedup})
    m = report.machine
    lines = [f"`{report.setting.model}` at {report.setting.resolution}px, {report.setting.threads} threads, "
             f"torch {m.get('torch', torch.__version__)}. Speed-up = the library's fastest contestant's time per image at the same "
             "precision / this one's (> 1: faster than that peer's best path)."]
    if m.get("peak_madds_per_s"):
        lines.append(f"Peak estimate: {m['peak_madds_per_s'] / 1e9:.0f} G multiply-adds/s ({m['threads']} cores x "
                     f"{m['mhz']:.0f} MHz x {m['fp32_lanes']} fp32 lanes x {m['fma_units_assumed']} FMA units, assumed).")
    if m.get("flags"):
        lines.append(f"CPU: {m.get('model') or m.get('processor')}; flags {' '.join(m['flags'])} "  # type: ignore[arg-type]
                     f"(native bf16: {'yes' if m.get('avx512_bf16') else 'no'}, VNNI: {'yes' if m.get('avx512_vnni') else 'no'}).")
    if report.headline:
        lines += ["", "Best against best (each side's fastest contestant; 'any' compares across precisions):", "",
                  "| section | precision | peer | ours (fastest) | images/s | ms/call | peer's fastest | images/s | ms/call | ratio |",
                  "|" + "---|" * 10]
        for h in report.headline:
            lines.append(f"| {h['section']} | {h['precision']} | {h['peer']} | {h['ours']} | {h['ours_images_per_s']:.1f} | "
                         f"{h['ours_ms']:.1f} | {h['best_peer']} | {h['peer_images_per_s']:.1f} | {h['peer_ms']:.1f} | "
                         f"{h['ratio']:.2f}x |")
    if report.rows:
        lines += ["", "| section | contestant | precision | batch | ms/call | images/s | G MAdds/s | % of peak | spread | "
                  + " | ".join(f"speed-up vs {lib} (same precision)" for lib in libraries) + " |",
                  "|" + "---|" * (9 + len(libraries))]
        for row in report.rows:
            peak = {"int8": m.get("int8_peak_madds_per_s"), "bf16": m.get("bf16_peak_madds_per_s")}.get(
                row.precision, m.get("peak_madds_per_s"))
            pct = f"{100 * row.madds_per_s / peak:.1f}%" if peak and row.madds_per_s else "-"  # type: ignore[operator]
            lines.append(f"| {row.section} | {row.contestant} | {row.precision} | {row.batch} | {row.seconds * 1e3:.1f} | "
                         f"{row.images_per_s:.1f} | {(row.madds_per_s or 0) / 1e9:.1f} | {pct} | {row.spread:.0%} | "
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


__all__ = ["MemoryRow", "Report", "Row", "best_vs_best", "cpu_peak", "library_of", "rows_from", "speedups",
           "to_markdown"]

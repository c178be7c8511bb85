"""Where a benchmark's result goes, and what it records about where it came from.

Every script under ``benchmarks/`` writes through :func:`write_result`::

    ROOT/BENCHMARK/history/DATE_MACHINE.json (and .md)   one file per run, never overwritten
    ROOT/BENCHMARK/latest.json (and .md)                 a copy of the newest run: what docs cite

A run's JSON holds the benchmark's own record plus ``provenance``: the date, the machine
(``xeon-amx``, ``epyc-avx2``: :func:`machine_name`), the commit and whether the tree had
uncommitted changes, the CPU model and its vector flags, the threads, the versions of torch
and of every runtime or peer library installed, and the command. The markdown gets the same
as a closing paragraph.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import re
import shlex
import subprocess
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import torch

from ..atomic import write_atomic
from ..device import CpuInfo, cpu_info

# Packages whose version changes what a benchmark measures (recorded when installed).
VERSIONED = ("torch", "torchvision", "timm", "onnxruntime", "openvino", "nncf", "numpy", "effnet")
# CPU flags that decide the speed of these kernels: vector width, FMA, int8 and bf16 dot products.
_FLAG_PREFIXES = ("avx", "amx", "fma", "f16c", "sse4")
_SOURCE = Path(__file__).resolve().parent


def machine_name(info: CpuInfo | None = None) -> str:
    """A short name for the CPU: its family and widest vector unit, e.g. ``xeon-amx``,
    ``xeon-avx512``, ``epyc-avx2`` (``unknown`` for a part of the name that cannot be read)."""
    info = info or cpu_info()
    words = re.findall(r"[a-z0-9]+", info.model.lower())
    family = next((w for w in ("xeon", "epyc", "ryzen", "threadripper", "core", "graviton", "neoverse", "apple")
                   if w in words), None)
    family = family or next((w for w in words if w not in ("r", "tm", "cpu", "processor")), "unknown")
    flags = info.flags
    isa = ("amx" if "amx_tile" in flags else "avx512" if "avx512f" in flags else "avx2" if "avx2" in flags
           else "neon" if {"asimd", "neon"} & flags else platform.machine().lower() or "unknown")
    return f"{family}-{isa}"


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(_SOURCE), *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def versions() -> dict[str, str]:
    """Python's version and those of :data:`VERSIONED` that are installed."""
    found = {"python": platform.python_version(), "torch": torch.__version__}  # torch's says its CUDA build
    for name in (v for v in VERSIONED if v != "torch"):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return found


def provenance(*, threads: int | None, command: str | None = None, when: datetime | None = None) -> dict[str, object]:
    """Where a result comes from: this machine, this checkout, now, this command."""
    when = when or datetime.now(UTC)
    info = cpu_info()
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"date": when.isoformat(timespec="seconds"), "machine": machine_name(info),
            "commit": commit or "unknown", "uncommitted_changes": bool(status) if status is not None else "unknown",
            "cpu": {"model": info.model or "unknown", "flags": sorted(f for f in info.flags if f.startswith(_FLAG_PREFIXES)),
                    "cores": os.cpu_count()},
            "threads": threads if threads is not None else "unknown", "versions": versions(),
            "command": command or shlex.join([sys.executable, *sys.argv])}


def provenance_markdown(p: Mapping[str, object]) -> str:
    """The provenance as one closing paragraph of a result's markdown."""
    cpu: Mapping[str, object] = p.get("cpu", {})  # type: ignore[assignment]
    flags = cpu.get("flags", "unknown")
    flags = " ".join(flags) if isinstance(flags, list) else flags
    dirty = p.get("uncommitted_changes")
    commit = str(p.get("commit", "unknown"))
    commit = commit[:12] + (" with uncommitted changes" if dirty is True else "")
    found: Mapping[str, object] = p.get("versions", {})  # type: ignore[assignment]
    versions_text = ", ".join(f"{k} {v}" for k, v in found.items()) if isinstance(found, Mapping) else str(found)
    lines = [f"Run {p.get('date', 'unknown')} on `{p.get('machine', 'unknown')}` ({cpu.get('model', 'unknown')}; flags: "
             f"{flags}), {p.get('threads', 'unknown')} threads; commit {commit}; {versions_text or 'versions unknown'}.",
             f"Command: `{p.get('command', 'unknown')}`"]
    if p.get("note"):
        lines.append(str(p["note"]))
    return "\n---\n\n" + "\n".join(lines) + "\n"


def _claim(history: Path, stem: str) -> tuple[Path, int]:
    """A history file of its own: ``stem.json``, else ``stem_2.json``, ``stem_3.json`` ...
    (created exclusively, so two runs at once never share one)."""
    n = 1
    while True:
        name = stem if n == 1 else f"{stem}_{n}"
        path = history / f"{name}.json"
        if not path.with_suffix(".md").exists():
            try:
                return path, os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                pass
        n += 1


def write_result(benchmark: str, record: Mapping[str, object], markdown: str | None = None, *, root: Path,
                 threads: int | None, command: str | None = None) -> Path:
    """Write one run of ``benchmark`` under ``root``: a new history file (never an existing
    one), then ``latest`` replaced atomically. Returns the history JSON's path."""
    p = provenance(threads=threads, command=command)
    history = root / benchmark / "history"
    history.mkdir(parents=True, exist_ok=True)
    stem = f"{str(p['date'])[:10]}_{p['machine']}"
    path, fd = _claim(history, stem)
    text = _json({"provenance": p, **record})
    with os.fdopen(fd, "w") as out:
        out.write(text)
    md = None if markdown is None else markdown.rstrip("\n") + "\n" + provenance_markdown(p)
    if md is not None:
        path.with_suffix(".md").write_text(md)
    write_atomic(root / benchmark / "latest.json", text)
    latest_md = root / benchmark / "latest.md"
    if md is not None:
        write_atomic(latest_md, md)
    elif latest_md.exists():
        latest_md.unlink()  # an older run's table would not describe this one
    return path


def _json(value: object) -> str:
    return json.dumps(value, indent=2, default=str) + "\n"


__all__ = ["VERSIONED", "machine_name", "provenance", "provenance_markdown", "versions", "write_result"]

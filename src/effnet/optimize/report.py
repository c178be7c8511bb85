"""What ``effnet optimize`` measured, as a table (``report.md``) and as data (``report.json``),
with the machine it was measured on: numbers from another CPU do not carry over."""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict
from pathlib import Path

import torch

from ..atomic import write_atomic
from ..device import cpu_info
from .choose import Choice

REPORT_MD, REPORT_JSON = "report.md", "report.json"
COLUMNS = ("runtime", "precision", "images/s", "ms at batch 1", "score (%)", "within budget", "chosen")


def machine() -> dict[str, object]:
    cpu = cpu_info()
    flags = sorted(f for f in cpu.flags if f.startswith(("avx", "amx", "fma", "f16c")))
    return {"cpu": cpu.model, "flags": flags, "cores": os.cpu_count(), "torch": torch.__version__,
            "python": platform.python_version()}


def table_rows(choice: Choice) -> list[tuple[str, ...]]:
    return [(r.runtime, r.precision, f"{r.images_per_s:,.1f}", f"{r.ms_batch1:.2f}", f"{r.score:.2f}",
             "yes" if r.within_budget else "no", "**yes**" if r.chosen else "")
            for r in sorted(choice.rows, key=lambda r: -r.images_per_s)]


def write_report(choice: Choice, out: Path, *, model: str, threads: int | None, kept: list[Path]) -> Path:
    """``out/report.md`` and ``out/report.json``; the path of the first."""
    where = machine()
    budget = "none (fp32 forms only)" if choice.budget is None else f"{choice.budget} points of top-1"
    lines = [f"# {model}: the fastest form within the accuracy budget", "",
             f"Chosen: **{choice.chosen.name}** ({', '.join(p.name for p in kept) or 'eager PyTorch: the weights as they are'}).",
             f"Score: {choice.evaluation}, {choice.images_scored} images. Budget: {budget}. "
             f"Batch {choice.batch}; {threads or os.cpu_count()} threads.",
             f"Machine: {where['cpu']} ({', '.join(where['flags'])}), {where['cores']} cores; torch {where['torch']}.",
             "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(choice)]
    if choice.cached:
        lines += ["", "(measured before on this machine for this model, evaluation and batch; the cached choice)"]
    write_atomic(out / REPORT_MD, "\n".join(lines) + "\n")
    data = {**choice.record(), "model": model, "threads": threads, "machine": where, "cached": choice.cached,
            "files": [str(p) for p in kept], "rows": [asdict(r) for r in choice.rows]}
    write_atomic(out / REPORT_JSON, json.dumps(data, indent=2))
    return out / REPORT_MD


__all__ = ["COLUMNS", "REPORT_JSON", "REPORT_MD", "machine", "table_rows", "write_report"]

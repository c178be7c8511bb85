"""A latency table: milliseconds of every piece a search space can produce, measured in one
runtime on one CPU, and the predictor that turns a network into its latency.

The prediction is the table's sum over the network's pieces (:mod:`.latency_parts`), then a
linear correction fitted on whole networks measured when the table was built:

    predicted = a x sum + b x pieces + c

``a`` absorbs what a whole network does better than its pieces in isolation (a layout change
at every program's input and output, caches kept warm between blocks); ``b`` is the cost a
separate call adds per piece (the runtime's dispatch and the copies of its input and output),
which a whole network pays once; ``c`` the whole network's own call. Without fitted networks
(``--fit-networks 0``) the prediction is the plain sum.

A table is measured on one CPU: loading it on another (a different model name or instruction
set in /proc/cpuinfo) is refused unless the caller says it knows (``allow_foreign``).
"""

from __future__ import annotations

import json
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..atomic import write_atomic
from ..device import cpu_id, cpu_info
from ..spec import NetworkSpec
from .latency_parts import network_parts
from .latency_runtime import Target

FORMAT = 1
# The instruction sets that change which kernels a runtime picks (recorded; the fingerprint
# over every flag decides whether a table is foreign).
KEY_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16")


class LatencyTableError(ValueError):
    """A table that cannot serve this question (another CPU, a piece it never measured)."""


def this_cpu() -> dict[str, Any]:
    info = cpu_info()
    return {"model": info.model or platform.processor() or platform.machine(),
            "flags": [flag for flag in KEY_FLAGS if flag in info.flags],
            "fingerprint": cpu_id()}


@dataclass
class LatencyTable:
    skeleton: str
    target: Target
    entries: dict[str, float]                       # piece key -> ms (batch 1)
    correction: dict[str, float] | None = None      # a, b, c of the linear correction
    meta: dict[str, Any] = field(default_factory=dict)  # runtime version, CPU, torch, command, build times

    def missing(self, spec: NetworkSpec) -> list[str]:
        return [part.key for part in network_parts(spec) if part.key not in self.entries]

    def table_sum(self, spec: NetworkSpec) -> tuple[float, int]:
        """The sum of the network's pieces (ms) and how many pieces it has."""
        parts = network_parts(spec)
        missing = [part.key for part in parts if part.key not in self.entries]
        if missing:
            raise LatencyTableError(f"{spec.name} has {len(missing)} piece(s) this table never measured (first: "
                                    f"{missing[0]!r}); build a table for its skeleton (`effnet nas latency-table "
                                    f"SKELETON`) - this one is for {self.skeleton!r}")
        return sum(self.entries[part.key] for part in parts), len(parts)

    def predict_ms(self, spec: NetworkSpec) -> float:
        """Predicted batch-1 latency of ``spec`` in the table's runtime, in ms."""
        total, pieces = self.table_sum(spec)
        if not self.correction:
            return total
        c = self.correction
        return c["a"] * total + c["b"] * pieces + c["c"]

    def check_machine(self, *, allow_foreign: bool = False) -> None:
        here = this_cpu()
        there = self.meta.get("cpu", {})
        if there.get("fingerprint") != here["fingerprint"] and not allow_foreign:
            raise LatencyTableError(
                f"this latency table was measured on another CPU ({there.get('model', '?')}, "
                f"{' '.join(there.get('flags', [])) or 'no key flags'}); this one is {here['model']} "
                f"({' '.join(here['flags']) or 'no key flags'}): its milliseconds do not hold here. Build a table on "
                "this machine, or pass --allow-foreign-table to use it anyway")

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "skeleton": self.skeleton, "target": asdict(self.target), "meta": self.meta,
                "correction": self.correction, "entries": dict(sorted(self.entries.items()))}

    def save(self, path: str | Path) -> Path:
        return write_atomic(path, json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path, *, allow_foreign: bool = False) -> LatencyTable:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
            table = cls(data["skeleton"], Target(**data["target"]), {k: float(v) for k, v in data["entries"].items()},
                        data.get("correction"), data.get("meta", {}))
        except FileNotFoundError:
            raise LatencyTableError(f"no latency table at {path}; build one with `effnet nas latency-table`") from None
        except (ValueError, KeyError, TypeError) as error:
            raise LatencyTableError(f"{path} is not a latency table ({error})") from None
        if data.get("format") != FORMAT:
            raise LatencyTableError(f"{path} is a latency table of format {data.get('format')}; this effnet reads {FORMAT}")
        table.check_machine(allow_foreign=allow_foreign)
        return table


def fit_correction(sums: list[float], pieces: list[int], measured: list[float]) -> dict[str, float]:
    """Least squares of ``measured ~ a x sum + b x pieces + c`` (at least 4 networks)."""
    if len(measured) < 4:
        raise ValueError(f"a correction needs at least 4 measured networks, got {len(measured)}")
    design = np.column_stack([sums, pieces, np.ones(len(sums))])
    (a, b, c), *_ = np.linalg.lstsq(design, np.asarray(measured), rcond=None)
    return {"a": float(a), "b": float(b), "c": float(c), "networks": len(measured)}


def provenance(target: Target) -> dict[str, Any]:
    return {"runtime": target.version(), "torch": torch.__version__, "cpu": this_cpu(), "threads": target.threads,
            "precision": target.precision, "batch": 1}

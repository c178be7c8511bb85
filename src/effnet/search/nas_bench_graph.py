"""Checking the strategies where the truth is known: NAS-Bench-Graph (Qin et al., NeurIPS
2022 datasets track; PyPI ``nas-bench-graph``, Apache-2.0) ships, inside the package, a table
of validation and test accuracy, latency and parameters for every architecture of its space.

Its space: four computing nodes, each fed by one earlier node (9 wirings, ``link_list``) and
running one of 9 operations (``gnn_list``; on proteins the 5 of ``gnn_list_proteins``). A
point here is 5 tokens: the wiring and the four operations. The package's own
``Arch.valid_hash`` maps a point to its table entry (isomorphic architectures share one);
points with no entry (all four nodes ``skip``) are invalid and get reward 0, and are counted.
The proteins table is keyed by the same hash over the same 9-operation numbering, with the
operations limited to gcn, sage, arma, fc and skip: its 2,021 entries are exactly the points
of that space, every one reached (tested). The package's own NNI script lists cheb instead of
sage for proteins; that list reaches 736 of the entries, so it is not the table's.

The tables are pickles of dicts of floats and numpy scalars, and the package reads them
with ``pickle.load``. Here they are read by an unpickler that accepts exactly two globals,
numpy's scalar and dtype constructors, so opening a table can never run code.
"""

from __future__ import annotations

import io
import pickle
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

try:  # numpy's scalar constructor, which pickles of numpy numbers name
    from numpy._core.multiarray import scalar as _scalar
except ImportError:  # numpy < 2
    from numpy.core.multiarray import scalar as _scalar

# Every table the package ships: eight of 26,206 architectures over 9 operations, and proteins
# (2,021 architectures over 5 operations).
DATASETS = ("cora", "citeseer", "pubmed", "cs", "physics", "photo", "computers", "arxiv", "proteins")


class _TableUnpickler(pickle.Unpickler):
    ALLOWED = {("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"), ("numpy", "dtype")}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"a NAS-Bench-Graph table may hold numbers only; refusing global {module}.{name}")
        return np.dtype if name == "dtype" else _scalar


def _package():  # type: ignore[no-untyped-def]
    try:
        import nas_bench_graph.architecture as architecture
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("the benchmark needs its tables: pip install nas-bench-graph") from error
    return architecture


def read_table(path: str | Path) -> dict[int, dict[str, float]]:
    """A table file as {hash: {"valid_perf", "perf", "latency", "para"}} of plain floats."""
    data = Path(path).read_bytes()
    raw = _TableUnpickler(io.BytesIO(data)).load()
    if not isinstance(raw, dict):
        raise ValueError(f"{path} is not a NAS-Bench-Graph table (a dict of architectures)")
    return {int(k): {name: float(v) for name, v in entry.items()} for k, entry in raw.items()}


@dataclass
class Table:
    """One data set's table and its search space."""

    dataset: str
    entries: dict[int, dict[str, float]]
    links: list[list[int]]
    ops: list[str]

    @classmethod
    def load(cls, dataset: str) -> Table:
        if dataset not in DATASETS:
            raise ValueError(f"unknown NAS-Bench-Graph data set {dataset!r}; choose one of {', '.join(DATASETS)}")
        architecture = _package()
        path = Path(architecture.__file__).parent / "light" / f"{dataset}.bench"
        ops = architecture.gnn_list_proteins if dataset == "proteins" else architecture.gnn_list
        return cls(dataset, read_table(path), [list(link) for link in architecture.link_list], list(ops))

    @property
    def sizes(self) -> tuple[int, ...]:
        return (len(self.links), *(len(self.ops),) * 4)

    def key(self, tokens: tuple[int, ...]) -> int:
        architecture = _package()
        return architecture.Arch(list(self.links[tokens[0]]), [self.ops[t] for t in tokens[1:]]).valid_hash()

    def find(self, tokens: tuple[int, ...]) -> tuple[int | None, dict[str, float] | None]:
        """The table key and entry of a point; (None, None) where the table has none."""
        try:
            key = self.key(tokens)
        except (KeyError, ValueError, IndexError):
            return None, None
        entry = self.entries.get(key)
        return (key, entry) if entry is not None else (None, None)

    def lookup(self, tokens: tuple[int, ...]) -> dict[str, float] | None:
        return self.find(tokens)[1]

    def median_latency(self) -> float:
        return statistics.median(e["latency"] for e in self.entries.values())

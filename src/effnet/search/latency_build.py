"""Building a latency table: export every piece of a search space, then time the pieces.

Two phases, so that both cores work and no two measurements disturb each other:

1. export: every piece not yet exported is written for the runtime by ``workers`` processes
   side by side (exports are compute, not measurements); each lands in its own folder by an
   atomic rename, so a cut build never leaves half an export behind;
2. time: this process loads the pieces 40 at a time and times them one call at a time on
   ``target.threads`` threads, nothing else of the build running, in alternating rounds (a
   slower spell of the machine falls on all 40 alike, not on a few), then appends each
   result to the journal (one synced JSON line each: a kill loses at most the 40 being timed).

Started again with the same settings, a build skips every export and every measurement the
folder already holds; a journal of other settings or from another CPU is refused. The same
two phases measure whole networks: ``fit_networks`` sampled with the build's seed fit the
table's correction, and the validation (:mod:`.latency_check`) uses other seeds.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.progress import track

from ..atomic import append_json_line, read_json_lines
from ..model import build_model
from ..spec import NetworkSpec
from ..spec_json import spec_from_dict, spec_to_dict
from ..train.progress_bar import console
from .latency_parts import Part, part_module, skeleton_parts
from .latency_runtime import Target, export_piece, load_piece, measure_group
from .latency_table import LatencyTable, LatencyTableError, fit_correction, provenance
from .space import Skeleton, decode, get_skeleton

MAX_SPREAD = 0.1     # a round within 10% of the fastest confirms it
STEADY_ROUNDS = 3    # rounds that must confirm the fastest
MAX_TRIES = 3
CHUNK = 40         # pieces timed side by side, then journaled


def sample_networks(skeleton: Skeleton, n: int, seed: int) -> list[tuple[int, ...]]:
    """``n`` points of the space drawn uniformly (every token independently) with ``seed``."""
    rng = np.random.default_rng(seed)
    return [tuple(int(rng.integers(size)) for size in skeleton.sizes) for _ in range(n)]


def network_piece(spec: NetworkSpec) -> Part:
    """A whole network as one piece, keyed by its architecture (not its name)."""
    described = json.dumps({**spec_to_dict(spec), "name": ""}, sort_keys=True)
    return Part(f"network {hashlib.sha1(described.encode()).hexdigest()[:16]}",
                (spec.in_chans, spec.resolution, spec.resolution), ("network",))


def measure_networks(target: Target, specs: Sequence[NetworkSpec], folder: str | Path, *, workers: int = 2,
                     progress: bool = True, rounds: int = 15) -> list[float]:
    """Each network exported whole and timed in ``target`` (ms; journaled in ``folder``), up to
    40 side by side in ``rounds`` alternating rounds."""
    bench = Workbench(Path(folder), target, {"what": "whole networks", **provenance(target)}, rounds=rounds)
    return bench.measure_networks(specs, workers=workers, progress=progress, what="whole networks")


class Workbench:
    """The folder where pieces are exported and the journal of their times."""

    def __init__(self, folder: Path, target: Target, header: dict[str, Any], *, rounds: int = 5) -> None:
        self.folder, self.target, self.rounds = folder, target, rounds
        self.journal = folder / "journal.jsonl"
        records = read_json_lines(self.journal)
        if records and records[0].get("header") != header:
            raise LatencyTableError(f"{folder} holds measurements of other settings or another machine "
                                    f"({records[0].get('header')}); use another folder or the same settings")
        if not records:
            append_json_line(self.journal, {"header": header})
        self.times = {r["key"]: r for r in records if "key" in r}  # the last record of a key wins

    def stem(self, key: str) -> Path:
        return self.folder / "exports" / hashlib.sha1(key.encode()).hexdigest()[:20] / "piece"

    def measure(self, jobs: Sequence[tuple[str, NetworkSpec, Part]], *, workers: int, progress: bool,
                what: str) -> dict[str, float]:
        """ms of every job's piece, exporting and timing only what the folder lacks (or timed
        unsteadily: see :func:`steady`)."""
        todo = [job for job in jobs if not steady(self.times.get(job[0]))]
        unexported = [job for job in todo if not self.target.file(self.stem(job[0])).exists()]
        started = time.perf_counter()
        _export_all(unexported, self, workers=workers, progress=progress, what=what)
        exported = time.perf_counter() - started
        if unexported:
            os.sync()  # the exports' writeback would otherwise run on the CPU while pieces are timed
        chunks = [todo[i:i + CHUNK] for i in range(0, len(todo), CHUNK)]
        for chunk in _bar(chunks, progress, f"timing {what} ({self.target.runtime}, {CHUNK} at a time, alternating)"):
            self._time(chunk)
        if todo:
            append_json_line(self.journal, {"phase": what, "pieces": len(todo), "exported": len(unexported),
                                            "export_s": exported, "total_s": time.perf_counter() - started})
        return {key: fastest(self.times[key]["rounds"]) for key, _, _ in jobs}

    def measure_networks(self, specs: Sequence[NetworkSpec], *, workers: int, progress: bool, what: str) -> list[float]:
        """ms of each network, exported whole (in the order given)."""
        pieces = [network_piece(spec) for spec in specs]
        measured = self.measure([(p.key, spec, p) for p, spec in zip(pieces, specs)], workers=workers,
                                progress=progress, what=what)
        return [measured[p.key] for p in pieces]

    def _time(self, chunk: Sequence[tuple[str, NetworkSpec, Part]]) -> None:
        """Time a chunk side by side; the unsteady ones again (their rounds pooled), up to
        MAX_TRIES; journal each."""
        runs = {key: (load_piece(self.target.file(self.stem(key)), self.target), part.shape) for key, _, part in chunk}
        left = dict(runs)
        while left:
            for key, rounds in measure_group(left, rounds=self.rounds).items():
                before = self.times.get(key, {})
                pooled = [*before.get("rounds", []), *rounds] if before.get("tries") else rounds
                self.times[key] = {"key": key, "ms": fastest(pooled), "rounds": pooled,
                                   "tries": before.get("tries", 0) + 1}
            left = {key: run for key, run in left.items() if not steady(self.times[key])}
        for key in runs:
            append_json_line(self.journal, self.times[key])


def fastest(rounds: Sequence[float]) -> float:
    """A piece's time: its fastest round (each round is the median of the calls made in it).
    This machine is shared: measured here, whole networks ran now at one speed, now 1.4-1.7x
    slower, round by round (one network: rounds of 0.042 and 0.075 ms in one run); the slow
    rounds are other load, the fast ones the piece's own time."""
    return min(rounds)


def steady(record: dict[str, Any] | None) -> bool:
    """Whether a measurement stands: at least STEADY_ROUNDS of its rounds lie within
    MAX_SPREAD of the fastest (that speed is the piece's, not a fluke), or it has been taken
    MAX_TRIES times. Otherwise it is taken again, now or when the build is started again."""
    if record is None or not record.get("rounds"):
        return False
    rounds = record["rounds"]
    close = sum(r <= fastest(rounds) * (1 + MAX_SPREAD) for r in rounds)
    return close >= min(STEADY_ROUNDS, len(rounds)) or record.get("tries", 1) >= MAX_TRIES


def _bar(items: Sequence[Any], progress: bool, description: str):  # type: ignore[no-untyped-def]
    return track(items, description=description, console=console(), disable=not progress) if items else items


def _export_all(jobs: Sequence[tuple[str, NetworkSpec, Part]], bench: Workbench, *, workers: int,
                progress: bool, what: str) -> None:
    work = [(spec_to_dict(spec), part, bench.target, str(bench.stem(key))) for key, spec, part in jobs]
    if workers <= 1 or len(work) < 2:
        for job in _bar(work, progress, f"exporting {what}"):
            _export_one(job)
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_one_thread) as pool:
        futures = [pool.submit(_export_one, job) for job in work]
        for future in track(as_completed(futures), total=len(futures), console=console(), disable=not progress,
                            description=f"exporting {what} ({workers} processes)"):
            future.result()


def _one_thread() -> None:
    torch.set_num_threads(1)


def _export_one(job: tuple[dict[str, Any], Part, Target, str]) -> str:
    spec_dict, part, target, stem = job
    model = build_model(spec_from_dict(spec_dict)).eval()
    module = model if part.where[0] == "network" else part_module(model, part)
    final = Path(stem).parent
    partial = final.with_name(final.name + f".partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    export_piece(module, part.shape, target, partial / "piece")
    shutil.rmtree(final, ignore_errors=True)
    os.replace(partial, final)  # the folder appears whole or not at all
    return str(final)


def build_table(skeleton_name: str, target: Target, out: str | Path, *, fit_networks: int = 200, seed: int = 0,
                workers: int = 2, progress: bool = True, command: str = "") -> LatencyTable:
    """Measure every piece of the skeleton's space (and ``fit_networks`` whole networks for the
    correction) in ``target``; write the table to ``out`` and return it. Resumable: the work
    folder ``OUT.parts/`` keeps the exports and the journal."""
    out = Path(out)
    skeleton = get_skeleton(skeleton_name)
    # More fit networks later only adds some: the first n of a seed are always the same.
    header = {"skeleton": skeleton.name, "target": asdict(target), "seed": seed, **provenance(target)}
    bench = Workbench(out.with_name(out.name + ".parts"), target, header)
    pieces = skeleton_parts(skeleton)
    started = time.perf_counter()
    entries = bench.measure([(key, *pieces[key]) for key in sorted(pieces)], workers=workers, progress=progress,
                            what="pieces")
    table = LatencyTable(skeleton.name, target, entries, None,
                         {**header, "fit_networks": fit_networks, "command": command, "pieces": len(entries)})
    specs = [decode(skeleton, tokens, name=f"fit{i}") for i, tokens in enumerate(sample_networks(skeleton, fit_networks, seed))]
    if specs:
        measured = bench.measure_networks(specs, workers=workers, progress=progress,
                                          what="whole networks for the correction")
        sums = [table.table_sum(spec) for spec in specs]
        table.correction = fit_correction([s for s, _ in sums], [n for _, n in sums], measured)
    table.meta["build_s"] = time.perf_counter() - started
    table.save(out)
    return table

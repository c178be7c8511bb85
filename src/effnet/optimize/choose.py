"""``effnet optimize``: the fastest deployable form of a model that keeps its accuracy.

Every candidate (:mod:`effnet.optimize.candidates`) is built, scored on the evaluation
(:mod:`effnet.optimize.evaluation`) and timed at the caller's batch size and at batch 1, all
in one process, alternating (:func:`effnet.deploy.timing.time_alternately`) so that load from
elsewhere hits every candidate alike. The winner is the fastest at the batch size whose score
is at most ``budget`` points below eager PyTorch fp32's. Without a budget only fp32 forms
compete: their numbers are the model's own.

The choice is remembered per model, evaluation, candidates, batch, threads and CPU in
``$EFFNET_CACHE/optimize_choice.json``; asked again, only the chosen form is built.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .._cache import cache_dir
from ..atomic import write_atomic
from ..deploy.onnx_cache import model_fingerprint
from ..deploy.runtime_choice import read_choices
from ..deploy.timing import time_alternately
from ..device import measured_on
from .candidates import Builder, Built, Candidate, available_candidates
from .evaluation import Evaluation, predictions

REFERENCE = Candidate("torch", "fp32")
CHOICES_FILE = "optimize_choice.json"


@dataclass
class Row:
    """One candidate as measured."""

    name: str
    runtime: str
    precision: str
    score: float                 # percent: minival top-1, or top-1 agreement with fp32
    images_per_s: float          # at the caller's batch size
    ms_batch1: float
    within_budget: bool = False
    chosen: bool = False
    files: list[str] = field(default_factory=list)


@dataclass
class Choice:
    chosen: Row
    rows: list[Row]
    batch: int
    budget: float | None
    evaluation: str              # what the score is, on what
    images_scored: int
    cached: bool = False
    built: Built | None = None   # the chosen form, loaded
    workdir: Path | None = None  # where the forms were written (the caller removes it)

    def record(self) -> dict[str, object]:
        return {"chosen": self.chosen.name, "rows": [asdict(r) for r in self.rows], "batch": self.batch,
                "budget": self.budget, "evaluation": self.evaluation, "images_scored": self.images_scored}


def _key(model: nn.Module, resolution: int, evaluation: Evaluation, names: list[str], batch: int, budget: float | None,
         threads: int | None) -> str:
    digest = hashlib.sha256(evaluation.images[:64].tobytes())
    digest.update(json.dumps([evaluation.kind, len(evaluation.images), names, batch, budget]).encode())
    return f"{model_fingerprint(model, resolution)}|{digest.hexdigest()[:16]}|{measured_on(threads)}"


def _time(built: dict[str, Built], x: np.ndarray, rounds: int, min_time: float) -> dict[str, float]:
    runners = {name: (lambda b=b: b.run(x)) for name, b in built.items()}
    samples = time_alternately(runners, rounds=rounds, min_time=min_time, warmup=1)
    return {name: float(np.median(s)) for name, s in samples.items()}


def choose(model: nn.Module, evaluation: Evaluation, *, resolution: int, batch: int = 32,
           budget: float | None = None, candidates: list[Candidate] | None = None, threads: int | None = None,
           rounds: int = 3, min_time: float = 0.5, use_cache: bool = True, qat_run: Path | None = None,
           step: Callable[[str], None] | None = None) -> Choice:
    """Build, score and time every candidate; the fastest within ``budget`` points of eager
    fp32's score (only fp32 forms when ``budget`` is None). ``step`` hears each stage."""
    candidates = list(candidates or available_candidates(int8=budget is not None, qat=qat_run is not None))
    if budget is None:
        candidates = [c for c in candidates if c.precision == "fp32"]
    if any(c.precision == "int8-qat" for c in candidates) and qat_run is None:
        raise ValueError("the int8-qat candidates need a quantisation-aware training run (quant.qat=true)")
    if budget is not None and budget < 0:
        raise ValueError(f"the accuracy budget is points of top-1 one may lose, >= 0; got {budget}")
    if REFERENCE not in candidates:
        candidates.insert(0, REFERENCE)
    torch.set_num_threads(threads or os.cpu_count() or 1)
    key = _key(model, resolution, evaluation, [c.name for c in candidates], batch, budget, threads)
    path = cache_dir() / CHOICES_FILE
    known = read_choices(path).get(key) if use_cache else None
    folder = Path(tempfile.mkdtemp(prefix="effnet-optimize-"))
    builder = Builder(model, folder, resolution, evaluation.calibration, threads, qat_run)
    if known is not None:  # measured before: build only the chosen form
        rows = [Row(**r) for r in known["rows"]]
        chosen = next(r for r in rows if r.chosen)
        built = builder.build(Candidate(chosen.runtime, chosen.precision))
        chosen.files = [str(f) for f in built.files]
        return Choice(chosen, rows, batch, budget, known["evaluation"], known["images_scored"], True, built, folder)
    built = {}
    for candidate in candidates:
        if step:
            step(f"building {candidate.name}")
        built[candidate.name] = builder.build(candidate)
    if step:
        step("scoring")
    rows = _measure(built, evaluation, batch, resolution, rounds, min_time, step)
    chosen = pick(rows, budget)
    choice = Choice(chosen, rows, batch, budget, f"{evaluation.kind} on {evaluation.source}", len(evaluation.images),
                    built=built[chosen.name], workdir=folder)
    if use_cache:
        write_atomic(path, json.dumps({**read_choices(path), key: choice.record()}, indent=1))
    return choice


def pick(rows: list[Row], budget: float | None) -> Row:
    """Mark which rows are within ``budget`` points of eager fp32's score (all, without a
    budget) and the fastest of those as chosen; returns it."""
    floor = next(r.score for r in rows if r.name == REFERENCE.name) - (budget or 0.0)
    for row in rows:
        row.within_budget = budget is None or row.score >= floor - 1e-9
        row.chosen = False
    chosen = max((r for r in rows if r.within_budget), key=lambda r: r.images_per_s)
    chosen.chosen = True
    return chosen


def _measure(built: dict[str, Built], evaluation: Evaluation, batch: int, resolution: int, rounds: int,
             min_time: float, step: Callable[[str], None] | None) -> list[Row]:
    reference = evaluation_reference(built[REFERENCE.name], evaluation)
    scores = {name: evaluation.score(b.run, reference) for name, b in built.items()}
    if step:
        step("timing")
    channels = evaluation.images.shape[1]
    x_batch = np.random.default_rng(0).standard_normal((batch, channels, resolution, resolution), dtype=np.float32)
    per_batch = _time(built, x_batch, rounds, min_time)
    per_image = _time(built, x_batch[:1], rounds, min_time) if batch != 1 else per_batch
    return [Row(name, b.candidate.runtime, b.candidate.precision, scores[name], batch / per_batch[name],
                per_image[name] * 1e3, files=[str(f) for f in b.files]) for name, b in built.items()]


def evaluation_reference(reference: Built, evaluation: Evaluation) -> np.ndarray | None:
    """Eager fp32's classes on the scored images, when the evaluation has no labels."""
    if evaluation.labels is not None:
        return None
    return predictions(reference.run, evaluation.images)


def keep_files(choice: Choice, out: Path) -> list[Path]:
    """Copy the chosen form's files into ``out``; the path each now has."""
    out.mkdir(parents=True, exist_ok=True)
    kept = []
    for source in map(Path, choice.chosen.files):
        target = out / source.name
        shutil.copyfile(source, target)
        kept.append(target)
    return kept


__all__ = ["CHOICES_FILE", "REFERENCE", "Choice", "Row", "choose", "keep_files", "pick"]

"""The two experiments end to end: trials -> runner (journaled) -> tables, summary, plots."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from ..scaling import ALPHA, BETA, GAMMA
from ..spec import NetworkSpec
from .coefficients import coefficient_trials, constraint_grid
from .journal import Journal
from .report import compare, plot_grid, plot_scaling, plot_width_grid, summarise, write_table
from .dispatch import TrialFn, run_trials
from .scaling_experiment import METHODS, scaling_trials
from .trials import Budget, TrialResult, train_trial
from .width_grid import CONFIGS, WIDTHS, at_equal_madds, width_grid_trials


@dataclass(frozen=True)
class LabOptions:
    """Where an experiment's trials run and where its folder is (shared by the search)."""

    out_dir: Path
    workers: int = 1
    backend: str = "local"
    ray_address: str | None = None
    data_dir: str | None = None
    progress: bool = True


@dataclass(frozen=True)
class GridRow:
    alpha: float
    beta: float
    gamma: float
    product: float
    mean_top1: float
    n: int


def search_coefficients(base: NetworkSpec, budget: Budget, options: LabOptions, *, step: float = 0.1,
                        tolerance: float = 0.1, seeds: Sequence[int] = (0,), trial_fn: TrialFn = train_trial,
                        points: Sequence[tuple[float, float, float]] | None = None) -> list[GridRow]:
    """Paper step 1: every grid point at phi = 1 (or only ``points``), ranked by mean
    minival top-1 (best first)."""
    grid = list(points) if points else constraint_grid(step, tolerance)
    trials = coefficient_trials(base, grid, budget, seeds, data_dir=options.data_dir,
                                run_dir=str(options.out_dir / "trials"))
    results = run_trials(trials, Journal(options.out_dir / "journal.jsonl"), workers=options.workers,
                         backend=options.backend, ray_address=options.ray_address, trial_fn=trial_fn,
                         progress=options.progress, description="coefficient grid")
    write_table(results, options.out_dir, "grid")
    groups: dict[tuple[float, float, float], list[float]] = defaultdict(list)
    for r in results:
        if r.top1 is not None:
            groups[(r.labels["alpha"], r.labels["beta"], r.labels["gamma"])].append(r.top1)
    rows = sorted((GridRow(a, b, g, a * b * b * g * g, sum(v) / len(v), len(v)) for (a, b, g), v in groups.items()),
                  key=lambda row: -row.mean_top1)
    plot_grid(results, options.out_dir / "grid.png", f"{base.name}: coefficient search at phi = 1")
    (options.out_dir / "best.json").write_text(json.dumps(asdict(rows[0]) if rows else {}, indent=2))
    return rows


def scaling_experiment(base: NetworkSpec, budget: Budget, options: LabOptions, *, phis: Sequence[float] = (1, 2, 3),
                       coefficients: tuple[float, float, float] = (ALPHA, BETA, GAMMA),
                       seeds: Sequence[int] = (0, 1, 2), trial_fn: TrialFn = train_trial,
                       methods: Sequence[str] = METHODS) -> dict[str, object]:
    """Paper step 2 against single-dimension scaling at matched MAdds (all three dimensions,
    or those in ``methods``); returns the summary."""
    trials = scaling_trials(base, phis, budget, seeds, coefficients, methods=methods, data_dir=options.data_dir,
                            run_dir=str(options.out_dir / "trials"))
    results = run_trials(trials, Journal(options.out_dir / "journal.jsonl"), workers=options.workers,
                         backend=options.backend, ray_address=options.ray_address, trial_fn=trial_fn,
                         progress=options.progress, description="scaling trials")
    write_table(results, options.out_dir, "scaling")
    points = summarise(results)
    plot_scaling(points, options.out_dir / "scaling.png",
                 f"{base.name} at {base.resolution} px: compound vs single-dimension scaling", results)
    comparisons = {
        f"phi={phi:g}": {other: compare(results, "compound", other, float(phi)) for other in METHODS[1:]
                         if other in methods and "compound" in methods}
        for phi in phis
    }
    summary = {"base": base.name, "coefficients": coefficients, "phis": list(phis), "seeds": list(seeds),
               "methods": list(methods),
               "budget": asdict(budget), "points": [asdict(p) for p in points], "compound_minus": comparisons,
               "failed": [r.key for r in results if r.top1 is None]}
    (options.out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def width_grid_experiment(base: NetworkSpec, budget: Budget, options: LabOptions, *,
                          widths: Sequence[float] = WIDTHS, configs: Sequence[tuple[float, float]] = CONFIGS,
                          seeds: Sequence[int] = (0, 1), trial_fn: TrialFn = train_trial) -> dict[str, object]:
    """Figure 4: width scaling along (depth, resolution) curves; returns the summary."""
    trials = width_grid_trials(base, budget, seeds, widths, configs, data_dir=options.data_dir,
                               run_dir=str(options.out_dir / "trials"))
    results = run_trials(trials, Journal(options.out_dir / "journal.jsonl"), workers=options.workers,
                         backend=options.backend, ray_address=options.ray_address, trial_fn=trial_fn,
                         progress=options.progress, description="width grid")
    write_table(results, options.out_dir, "width_grid")
    points = summarise(results, key="width")
    plot_width_grid(points, options.out_dir / "width_grid.png",
                    f"{base.name} at {base.resolution} px: scaling width at different depth and resolution", results)
    summary = {"base": base.name, "widths": list(widths), "configs": [list(c) for c in configs], "seeds": list(seeds),
               "budget": asdict(budget), "points": [asdict(p) | {"width": p.phi} for p in points],
               "equal_madds": at_equal_madds(points), "failed": [r.key for r in results if r.top1 is None]}
    (options.out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def finished(results: Sequence[TrialResult]) -> int:
    return sum(r.top1 is not None for r in results)

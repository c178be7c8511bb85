"""Does a latency table predict what the runtime measures? Networks sampled from the space
with a seed the table was not built with are exported whole and timed in the table's runtime;
the table's prediction (plain sum and corrected) and MAdds are each compared with the
measurement: Kendall's tau (does it rank networks as the runtime does) and the mean absolute
percentage error (MAPE). MAdds are not milliseconds: their MAPE is that of the best line
``ms = k x MAdds + m`` fitted on these same networks, a bound that favours MAdds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from ..counting import count
from ..figures import new_figure, save_png
from .latency_build import measure_networks, sample_networks
from .latency_table import LatencyTable, LatencyTableError, provenance
from .space import decode, get_skeleton

GOAL_TAU, GOAL_MAPE = 0.9, 10.0


def _tau(x: list[float], y: list[float]) -> float:
    return float(stats.kendalltau(x, y).statistic)


def _mape(predicted: list[float] | np.ndarray, measured: list[float]) -> float:
    m = np.asarray(measured)
    return float(np.mean(np.abs(np.asarray(predicted) - m) / m) * 100)


def check_table(table: LatencyTable, out: str | Path, *, networks: int = 100, seed: int = 1, workers: int = 2,
                progress: bool = True) -> dict[str, Any]:
    """Measure ``networks`` sampled networks and score the table's predictions (also written
    to ``OUT/latency_check.{json,md,png}``). Resumable through ``OUT/parts/journal.jsonl``."""
    out = Path(out)
    if seed == table.meta.get("seed"):
        raise LatencyTableError(f"seed {seed} built this table's correction; validate with another (--seed)")
    skeleton = get_skeleton(table.skeleton)
    points = sample_networks(skeleton, networks, seed)
    specs = [decode(skeleton, tokens, name=f"check{i}") for i, tokens in enumerate(points)]
    header = {"skeleton": skeleton.name, "seed": seed, "networks": networks, **provenance(table.target)}
    measured = measure_networks(table.target, specs, out / "parts", workers=workers, progress=progress)
    plain = [table.table_sum(s)[0] for s in specs]
    predicted = [table.predict_ms(s) for s in specs]
    madds = [float(count(s).madds) for s in specs]
    k, m = np.polyfit(madds, measured, 1)
    summary = {
        "networks": networks, "seed": seed, "table": table.meta, "target": header,
        "tau": {"table": _tau(predicted, measured), "table_sum": _tau(plain, measured), "madds": _tau(madds, measured)},
        "mape": {"table": _mape(predicted, measured), "table_sum": _mape(plain, measured),
                 "madds_best_line": _mape(np.polyval([k, m], madds), measured)},
        "measured_ms": {"min": min(measured), "median": float(np.median(measured)), "max": max(measured)},
        "rows": [{"tokens": list(t), "measured_ms": me, "predicted_ms": p, "table_sum_ms": s, "madds": a}
                 for t, me, p, s, a in zip(points, measured, predicted, plain, madds)],
    }
    summary["goals_met"] = summary["tau"]["table"] >= GOAL_TAU and summary["mape"]["table"] <= GOAL_MAPE
    (out / "latency_check.json").write_text(json.dumps(summary, indent=1))
    (out / "latency_check.md").write_text(report(summary))
    _plot(out / "latency_check.png", measured, predicted, plain, madds, summary)
    return summary


def report(summary: dict[str, Any]) -> str:
    tau, mape = summary["tau"], summary["mape"]
    target = summary["target"]
    lines = [f"# Latency table check: {summary['networks']} networks of the {target['skeleton']} space (seed "
             f"{summary['seed']})", "",
             f"Runtime {target['runtime']}, {target['precision']}, {target['threads']} thread(s), batch 1; CPU "
             f"{target['cpu']['model']} ({' '.join(target['cpu']['flags'])}); torch {target['torch']}.",
             f"Measured: {summary['measured_ms']['min']:.3f} .. {summary['measured_ms']['max']:.3f} ms "
             f"(median {summary['measured_ms']['median']:.3f}).", "",
             "| predictor | Kendall tau vs measured | MAPE (%) |", "|---|---|---|",
             f"| table, corrected | {tau['table']:.3f} | {mape['table']:.1f} |",
             f"| table, plain sum | {tau['table_sum']:.3f} | {mape['table_sum']:.1f} |",
             f"| MAdds (MAPE: best line fitted on these networks) | {tau['madds']:.3f} | {mape['madds_best_line']:.1f} |",
             "", f"Goals: tau >= {GOAL_TAU}, MAPE <= {GOAL_MAPE:g}%: {'met' if summary['goals_met'] else 'not met'}."]
    return "\n".join(lines) + "\n"


def _plot(path: Path, measured: list[float], predicted: list[float], plain: list[float], madds: list[float],
          summary: dict[str, Any]) -> None:
    fig = new_figure(10, 4.2)
    left, right = fig.subplots(1, 2)
    left.scatter(measured, predicted, s=14, label=f"corrected (tau {summary['tau']['table']:.2f})")
    left.scatter(measured, plain, s=10, marker="x", alpha=0.6, label=f"plain sum (tau {summary['tau']['table_sum']:.2f})")
    low, high = min(measured), max(measured)
    left.plot([low, high], [low, high], color="gray", linestyle=":")
    left.set_xlabel("measured latency (ms)")
    left.set_ylabel("predicted by the table (ms)")
    left.legend(fontsize=8)
    right.scatter(madds, measured, s=14, color="tab:red")
    right.set_xlabel("MAdds")
    right.set_ylabel("measured latency (ms)")
    right.set_title(f"MAdds: tau {summary['tau']['madds']:.2f}", fontsize=10)
    target = summary["target"]
    fig.suptitle(f"{target['runtime']} {target['precision']}, {target['threads']} thread(s), {target['cpu']['model']}",
                 fontsize=10)
    save_png(fig, path)

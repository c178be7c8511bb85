"""`effnet nas benchmark nas-bench-graph`: the same strategy classes on a table whose truth
is known, with ``ACC x (LAT / T)^w`` (T: the table's median latency, w = -0.07), many seeds;
the best reward found after 25, 50, 100 and 200 evaluations (median and interquartile range,
mean and 95% interval, and each strategy's difference from random search with its Welch 95%
interval: ahead, behind, or a tie where the interval holds 0), and the test accuracy of the
best architecture found."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..atomic import write_atomic
from ..figures import new_figure, save_png
from ..lab.report import ci95, welch
from .controller import make_strategy
from .nas_bench_graph import Table
from .rewards import Reward

CHECKPOINTS = (25, 50, 100, 200)
BASELINE = "random"


def search_table(table: Table, strategy_name: str, evaluations: int, seed: int, reward: Reward,
                 **options: object) -> dict[str, object]:
    """One search: best-so-far reward after every evaluation, the best architecture's
    validation and test accuracy, and how many samples were invalid or repeated.
    ``options`` go to the strategy (e.g. the controller's ``lr``)."""
    strategy = make_strategy(strategy_name, table.sizes, seed, **options)
    best_reward, best_entry, best_tokens = -np.inf, None, None
    curve, seen = [], set()
    invalid = duplicates = 0
    while len(curve) < evaluations:
        for candidate in strategy.ask(min(strategy.batch_size, evaluations - len(curve))):
            key, entry = table.find(candidate.tokens)
            invalid += entry is None
            duplicates += key in seen
            seen.add(key)
            value = reward(entry["valid_perf"], entry["latency"]) if entry is not None else 0.0
            strategy.tell(candidate.id, value)
            if value > best_reward:
                best_reward, best_entry, best_tokens = value, entry, candidate.tokens
            curve.append(best_reward)
    return {"curve": curve, "best_tokens": list(best_tokens or ()), "best_valid": best_entry and best_entry["valid_perf"],
            "best_test": best_entry and best_entry["perf"], "best_latency": best_entry and best_entry["latency"],
            "invalid": invalid, "duplicates": duplicates}


def _spread(values: Sequence[float]) -> dict[str, float]:
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    mean, _, half = ci95([float(v) for v in values])
    return {"median": float(median), "q1": float(q1), "q3": float(q3), "mean": mean, "ci95": half}


def against(values: Sequence[float], baseline: Sequence[float]) -> dict[str, object]:
    """Mean difference from the baseline's, its Welch 95% interval and the verdict: a
    difference whose interval holds 0 is a tie."""
    found = welch([float(v) for v in values], [float(v) for v in baseline])
    low, high = found["diff"] - found["ci95"], found["diff"] + found["ci95"]
    verdict = "ahead" if low > 0 else "behind" if high < 0 else "tie"
    if np.isnan(found["ci95"]):   # fewer than two seeds: no interval, no verdict
        verdict = "unknown"
    return {**found, "verdict": verdict}


def table_reward(table: Table, exponent: float = -0.07) -> tuple[Reward, float]:
    """The benchmark's reward for a table, and the best reward anywhere in it (the truth the
    strategies are chasing)."""
    reward = Reward("soft", table.median_latency(), exponent, exponent)
    return reward, max(reward(e["valid_perf"], e["latency"]) for e in table.entries.values())


def summarise_runs(runs: dict[str, list[dict[str, object]]], evaluations: int, optimum: float) -> dict[str, object]:
    """Per strategy: the best reward after each checkpoint (spread, and against random search
    where it ran), the best architecture's test accuracy and the wasted samples."""
    summary: dict[str, object] = {}
    curves = {name: np.array([r["curve"] for r in results]) for name, results in runs.items()}
    for name, results in runs.items():
        entry: dict[str, object] = {}
        for n in (n for n in CHECKPOINTS if n <= evaluations):
            entry[f"best_reward_after_{n}"] = _spread(curves[name][:, n - 1])
            if name != BASELINE and BASELINE in curves:
                entry[f"against_{BASELINE}_after_{n}"] = against(curves[name][:, n - 1], curves[BASELINE][:, n - 1])
        entry["best_test_accuracy"] = _spread([r["best_test"] for r in results])  # type: ignore[misc]
        entry["found_table_optimum"] = int(sum(np.isclose(r["curve"][-1], optimum) for r in results))  # type: ignore[index]
        entry["invalid_samples"] = int(sum(r["invalid"] for r in results))  # type: ignore[misc]
        entry["duplicate_samples"] = int(sum(r["duplicates"] for r in results))  # type: ignore[misc]
        summary[name] = entry
    return summary


def run_table_benchmark(dataset: str, strategies: Sequence[str], evaluations: int, seeds: int, out_dir: Path,
                        exponent: float = -0.07, controller_lr: float | None = None) -> dict[str, object]:
    table = Table.load(dataset)
    reward, optimum = table_reward(table, exponent)

    def options(name: str) -> dict[str, object]:
        return {"lr": controller_lr} if controller_lr is not None and name in ("ppo", "reinforce") else {}

    runs = {name: [search_table(table, name, evaluations, seed, reward, **options(name)) for seed in range(seeds)]
            for name in strategies}
    summary: dict[str, object] = {
        "dataset": dataset, "architectures": len(table.entries), "evaluations": evaluations, "seeds": seeds,
        "reward": f"valid_acc x (latency / {reward.target:.6g})^{exponent}", "table_optimum_reward": optimum,
        "settings": {name: make_strategy(name, table.sizes, 0, **options(name)).settings for name in strategies},
        "strategies": summarise_runs(runs, evaluations, optimum)}
    out_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(out_dir / "summary.json", json.dumps(summary, indent=2))
    write_atomic(out_dir / "runs.json", json.dumps(runs, indent=1))
    plot_best_so_far(runs, optimum, out_dir / "best_so_far.png", f"NAS-Bench-Graph {dataset}: best reward so far "
                     f"(median and IQR of {seeds} seeds)")
    return summary


def plot_best_so_far(runs: dict[str, list[dict[str, object]]], optimum: float, path: Path, title: str) -> Path:
    fig = new_figure(7, 4.5)
    ax = fig.subplots()
    for (name, results), color in zip(runs.items(), ("tab:gray", "tab:green", "tab:red", "tab:blue")):
        curves = np.array([r["curve"] for r in results])
        x = np.arange(1, curves.shape[1] + 1)
        q1, median, q3 = np.percentile(curves, [25, 50, 75], axis=0)
        ax.plot(x, median, color=color, label=name)
        ax.fill_between(x, q1, q3, color=color, alpha=0.15)
    ax.axhline(optimum, color="black", linestyle=":", linewidth=1, label="table optimum")
    ax.set_xlabel("evaluations")
    ax.set_ylabel("best reward so far")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
    return save_png(fig, path)

"""Experiment results as tables (CSV/JSON), summaries with confidence intervals, and plots."""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter
from scipy import stats

from ..figures import new_figure, save_png
from .trials import TrialResult


@dataclass(frozen=True)
class Point:
    """Mean accuracy of one network over its seeds, with a 95% t-interval."""

    method: str
    phi: float
    madds: int
    params: int
    resolution: int
    n: int
    mean: float
    std: float
    ci95: float


def write_table(results: Sequence[TrialResult], out_dir: Path, stem: str) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = [{k: v for k, v in r.to_dict().items() if k != "spec"} | {f"label_{k}": v for k, v in r.labels.items()}
            for r in results]
    for row in rows:
        row.pop("labels", None)
    # keys sorted, as in the journal: a table rewritten from the journal reads the same
    (out_dir / f"{stem}.json").write_text(json.dumps([r.to_dict() for r in results], indent=2, sort_keys=True))
    if rows:
        fields = list(dict.fromkeys(k for row in rows for k in row))
        with (out_dir / f"{stem}.csv").open("w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)


def ci95(values: Sequence[float]) -> tuple[float, float, float]:
    """Mean, standard deviation and the half-width of a 95% Student-t interval."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, 0.0, math.nan
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, std, float(stats.t.ppf(0.975, n - 1)) * std / math.sqrt(n)


def summarise(results: Sequence[TrialResult], key: str = "phi") -> list[Point]:
    """One point per (method, label ``key``, network): the mean over seeds with its interval
    (``Point.phi`` holds the ``key`` label: phi for scaling runs, the width for a width grid)."""
    groups: dict[tuple[str, float, int], list[TrialResult]] = defaultdict(list)
    for r in results:
        if r.top1 is not None:
            groups[(r.method, float(r.labels.get(key, 0.0)), r.madds)].append(r)
    points = []
    order = ("base", "compound", "width", "depth", "resolution")
    for (method, phi, madds), members in sorted(
            groups.items(), key=lambda kv: (order.index(kv[0][0]) if kv[0][0] in order else len(order), kv[0][1])):
        mean, std, half = ci95([m.top1 for m in members])  # type: ignore[misc]
        points.append(Point(method, phi, madds, members[0].params, members[0].resolution, len(members),
                            mean, std, half))
    return points


def welch(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    """Difference of means (a - b) with a Welch 95% interval and the p-value (NaN below 2 each)."""
    if len(a) < 2 or len(b) < 2:
        return {"diff": (sum(a) / len(a) - sum(b) / len(b)) if a and b else math.nan, "ci95": math.nan, "p": math.nan}
    va, vb = stats.tvar(a) / len(a), stats.tvar(b) / len(b)
    dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1)) if va + vb > 0 else len(a) + len(b) - 2
    diff = sum(a) / len(a) - sum(b) / len(b)
    test = stats.ttest_ind(a, b, equal_var=False)
    return {"diff": diff, "ci95": float(stats.t.ppf(0.975, dof)) * math.sqrt(va + vb), "p": float(test.pvalue)}


def compare(results: Sequence[TrialResult], method: str, against: str, phi: float) -> dict[str, float]:
    """Difference of mean top-1 (method - against) at one phi with a Welch 95% interval."""
    a = [r.top1 for r in results if r.method == method and r.labels.get("phi") == phi and r.top1 is not None]
    b = [r.top1 for r in results if r.method == against and r.labels.get("phi") == phi and r.top1 is not None]
    return welch(a, b)  # type: ignore[arg-type]


SCALING_STYLES = {"compound": ("tab:red", "o", 2.2), "width": ("tab:blue", "s", 1.2),
                  "depth": ("tab:green", "^", 1.2), "resolution": ("tab:purple", "D", 1.2)}


def draw_scaling(ax, points: Sequence[Point], results: Sequence[TrialResult] = ()) -> None:  # type: ignore[no-untyped-def]
    """One line per scaling method, each from the base, on ``ax``: with error bars, or, given the
    ``results``, with each seed's trial as a dot instead (with two seeds a t-interval is twelve
    standard errors wide and runs past 100%)."""
    base = [p for p in points if p.method == "base"]
    if results and base:
        ax.plot([p.madds / 1e6 for p in base], [p.mean for p in base], color="black", marker="*", markersize=11,
                linestyle="none", label="base", zorder=3)
    for method, (color, marker, width) in SCALING_STYLES.items():
        series = sorted(base + [p for p in points if p.method == method], key=lambda p: p.madds)
        if len(series) <= len(base):
            continue
        xs, ys = [p.madds / 1e6 for p in series], [p.mean for p in series]
        if results:
            ax.plot(xs, ys, label=method, color=color, marker=marker, linewidth=width)
            seeds = [r for r in results if r.method == method and r.top1 is not None]
            ax.scatter([r.madds / 1e6 for r in seeds], [r.top1 for r in seeds], color=color, s=14, alpha=0.45)
        else:
            ax.errorbar(xs, ys, yerr=[0 if math.isnan(p.ci95) else p.ci95 for p in series], label=method,
                        color=color, marker=marker, linewidth=width, capsize=3)


def plot_scaling(points: Sequence[Point], path: Path, title: str, results: Sequence[TrialResult] = ()) -> Path:
    """Accuracy against MAdds, one line per scaling method (paper Figures 3/8): with error bars
    when every point has three seeds or more, else with each seed's trial (from ``results``) as
    a dot, since a two-seed t-interval runs far past 0-100% and flattens the lines."""
    fig = new_figure(7, 4.5)
    ax = fig.subplots()
    draw_scaling(ax, points, results if any(p.n < 3 for p in points) else ())
    return _save_accuracy_plot(fig, ax, path, title, "multiply-adds (M)")


def label_accuracy_axes(ax, title: str, xlabel: str) -> None:  # type: ignore[no-untyped-def]
    """Labels, grid and legend of an accuracy-against-cost plot."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel("minival top-1 (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:  # a panel of a run just begun may hold only the base
        ax.legend()


def _save_accuracy_plot(fig: Figure, ax, path: Path, title: str, xlabel: str) -> Path:  # type: ignore[no-untyped-def]
    """:func:`label_accuracy_axes`, then the PNG."""
    label_accuracy_axes(ax, title, xlabel)
    return save_png(fig, path)


def plot_grid(results: Sequence[TrialResult], path: Path, title: str) -> Path:
    """Coefficient search: accuracy of each (alpha, beta, gamma), best highlighted."""
    groups: dict[tuple[float, float, float], list[float]] = defaultdict(list)
    for r in results:
        if r.top1 is not None:
            groups[(r.labels["alpha"], r.labels["beta"], r.labels["gamma"])].append(r.top1)
    items = sorted(groups.items(), key=lambda kv: -sum(kv[1]) / len(kv[1]))
    fig = new_figure(max(6, 0.35 * len(items)), 4.5)
    ax = fig.subplots()
    means = [sum(v) / len(v) for _, v in items]
    ax.bar(range(len(items)), means, color=["tab:red"] + ["tab:gray"] * (len(items) - 1))
    ax.set_xticks(range(len(items)), [f"{a:g}/{b:g}/{g:g}" for (a, b, g), _ in items], rotation=70, fontsize=8)
    ax.set_ylabel("minival top-1 (%)")
    ax.set_xlabel("alpha / beta / gamma (depth / width / resolution)")
    if means:
        ax.set_ylim(min(means) - 1, max(means) + 0.5)
    ax.set_title(title)
    return save_png(fig, path)


def plot_width_grid(points: Sequence[Point], path: Path, title: str,
                    results: Sequence[TrialResult] = ()) -> Path:
    """Figure 4's shape: top-1 against MAdds as width grows, one curve per (depth, resolution):
    the mean over seeds as a line, each seed's trial as a dot (with two seeds a t-interval is
    twelve standard errors wide and hides the curves)."""
    fig = new_figure(7.5, 4.8)
    ax = fig.subplots()
    colors = ("tab:blue", "tab:green", "tab:orange", "tab:red", "tab:purple", "tab:brown")
    for curve, color in zip(dict.fromkeys(p.method for p in points), colors):
        series = sorted((p for p in points if p.method == curve), key=lambda p: p.madds)
        ax.plot([p.madds / 1e6 for p in series], [p.mean for p in series], label=curve, color=color, marker="o")
        seeds = [r for r in results if r.method == curve and r.top1 is not None]
        ax.scatter([r.madds / 1e6 for r in seeds], [r.top1 for r in seeds], color=color, s=12, alpha=0.45)
        for p in series:
            ax.annotate(f"w={p.phi:g}", (p.madds / 1e6, p.mean), textcoords="offset points", xytext=(4, -10),
                        fontsize=7, color=color)
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))
    ax.xaxis.set_major_formatter(ScalarFormatter())  # 2, 5, 10, 20 M rather than 2 x 10^0
    ax.xaxis.set_minor_formatter(NullFormatter())
    return _save_accuracy_plot(fig, ax, path, title, "multiply-adds (M, log scale); dots: single seeds, lines: means")

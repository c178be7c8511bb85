"""What a search found, retrained from scratch beside the hand design and random networks of
the same MAdds: does the search beat the design, and does it beat luck?

Contenders: the top ``top`` distinct networks of one or more searches (by reward), the ``near``
best (by proxy top-1) whose cost lies within ``tolerance`` of the search's target T (a soft
reward may prefer a much smaller network; these are the ones to hold against the base at its
size), the skeleton's reference network (the hand-designed base) and ``randoms`` networks drawn
uniformly from the same space until their MAdds lie within ``tolerance`` of the base's. Each
trains with the same budget and seeds, ranked on minival as in the search; the test set is
read once per training, here and nowhere else in a search (``Trial.on_test``). Each row also
gets its test reward: the search's own reward computed from its mean test top-1.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from ..figures import new_figure, save_png
from ..counting import count
from ..lab.experiments import LabOptions
from ..lab.journal import Journal
from ..lab.report import ci95
from ..lab.dispatch import TrialFn, run_trials
from ..lab.trials import Budget, Trial, train_trial
from ..spec import NetworkSpec
from ..spec_json import write_spec
from .latency import cpu_latency_ms
from .latency_build import measure_networks
from .latency_table import LatencyTable
from .loop import STATE, SearchConfig, cost_function, default_target, load_table
from .rewards import Reward
from .space import Skeleton, decode, describe_spec, get_skeleton

ROLES = {"found": "found by the search", "near": "found by the search, near T", "base": "hand-designed base",
         "random": "random, same MAdds"}


@dataclass(frozen=True)
class Contender:
    role: str                      # found | base | random
    name: str                      # found-1, base, random-2, ...
    tokens: tuple[int, ...] | None  # None: the skeleton's reference (the hand design need not lie in the space)
    proxy_top1: float | None = None
    proxy_reward: float | None = None


@dataclass(frozen=True)
class Search:
    folder: Path
    config: dict[str, Any]
    budget: dict[str, Any]
    records: list[dict[str, Any]]


def read_search(folder: str | Path) -> Search:
    """A search's configuration, proxy budget and every candidate so far (finished or not)."""
    folder = Path(folder)
    path = folder / STATE
    if not path.is_file():
        raise FileNotFoundError(f"{folder} holds no search ({STATE} is missing); run `effnet nas search "
                                f"--out {folder}` first")
    state = torch.load(path, weights_only=True)
    return Search(folder, state["config"], state["budget"], state["records"])


def ranked(searches: Sequence[Search]) -> list[dict[str, Any]]:
    """Every trained candidate of ``searches``, one per distinct network (its best record),
    best reward first."""
    best: dict[tuple[int, ...], dict[str, Any]] = {}
    for search in searches:
        for record in search.records:
            if record["top1"] is None:
                continue
            tokens = tuple(record["tokens"])
            if tokens not in best or record["reward"] > best[tokens]["reward"]:
                best[tokens] = record
    return sorted(best.values(), key=lambda r: -r["reward"])


def skeleton_of(searches: Sequence[Search]) -> Skeleton:
    names = {s.config["skeleton"] for s in searches}
    if len(names) != 1:
        raise ValueError(f"the searches use different skeletons ({', '.join(sorted(names))}); retrain one at a time")
    return get_skeleton(names.pop())


def random_same_madds(skeleton: Skeleton, n: int, *, seed: int = 0, tolerance: float = 0.1,
                      exclude: Sequence[tuple[int, ...]] = (), draws: int = 200_000) -> list[tuple[int, ...]]:
    """``n`` distinct points drawn uniformly from the space whose MAdds are within
    ``tolerance`` (a fraction) of the reference network's: the control for "the search only
    found a network of the right size"."""
    target = count(skeleton.reference).madds
    rng = random.Random(seed)
    chosen: list[tuple[int, ...]] = []
    seen = set(exclude)
    for _ in range(draws):
        if len(chosen) == n:
            return chosen
        tokens = tuple(rng.randrange(size) for size in skeleton.sizes)
        if tokens not in seen and abs(count(decode(skeleton, tokens)).madds / target - 1) <= tolerance:
            chosen.append(tokens)
            seen.add(tokens)
    raise ValueError(f"only {len(chosen)} of {n} random networks within {tolerance:.0%} of the base's MAdds in "
                     f"{draws:,} draws; allow a larger tolerance")


def search_target(searches: Sequence[Search]) -> float:
    """The first search's resolved target T, in its cost's unit."""
    return default_target(SearchConfig(**searches[0].config))


def latencies(table: LatencyTable | None, specs: Sequence[NetworkSpec], out: Path, *, progress: bool) -> list[float]:
    """Measured batch-1 ms of each network: in the latency table's runtime when the search had
    one (each exported whole, as deployed), else eager PyTorch on one thread."""
    if table is None:
        return [cpu_latency_ms(spec) for spec in specs]
    return measure_networks(table.target, specs, out / "measured_latency", progress=progress)


def contenders(searches: Sequence[Search], *, top: int = 3, near: int = 1, randoms: int = 3, seed: int = 0,
               tolerance: float = 0.1) -> tuple[Skeleton, list[Contender]]:
    skeleton = skeleton_of(searches)
    pooled = ranked(searches)
    found = pooled[:top]
    if len(found) < top:
        raise ValueError(f"the searches trained only {len(found)} distinct networks; --top {top} needs more")
    chosen = [Contender("found", f"found-{i}", tuple(r["tokens"]), r["top1"], r["reward"])
              for i, r in enumerate(found, 1)]
    target = search_target(searches)
    taken = {c.tokens for c in chosen}
    at_target = sorted((r for r in pooled if abs(r["cost"] / target - 1) <= tolerance and tuple(r["tokens"]) not in taken),
                       key=lambda r: -r["top1"])[:near]
    chosen += [Contender("near", f"near-{i}", tuple(r["tokens"]), r["top1"], r["reward"])
               for i, r in enumerate(at_target, 1)]
    chosen.append(Contender("base", "base", None))
    exclude = [c.tokens for c in chosen if c.tokens is not None]
    chosen += [Contender("random", f"random-{i}", tokens) for i, tokens in
               enumerate(random_same_madds(skeleton, randoms, seed=seed, tolerance=tolerance, exclude=exclude), 1)]
    return skeleton, chosen


def retrain(searches: Sequence[str | Path], budget: Budget, options: LabOptions, *, top: int = 3, near: int = 1,
            randoms: int = 3, seeds: Sequence[int] = (0, 1, 2), random_seed: int = 0, tolerance: float = 0.1,
            trial_fn: TrialFn = train_trial, latency: bool = True) -> dict[str, Any]:
    """Train every contender with every seed (journaled: an interrupted run resumes) and
    write ``retrain.{json,md,png}`` under ``options.out_dir``; returns the summary."""
    found = [read_search(folder) for folder in searches]
    skeleton, chosen = contenders(found, top=top, near=near, randoms=randoms, seed=random_seed, tolerance=tolerance)
    config = SearchConfig(**found[0].config)
    table = load_table(config)
    cost = cost_function(config, table)
    reward = Reward(config.reward, default_target(config, cost))
    out = Path(options.out_dir)
    trials = [Trial("retrain", c.role, network(skeleton, c), budget, seed, data_dir=options.data_dir,
                    run_dir=str(out / "trials"), labels=(("network", c.name),), on_test=True)
               for c in chosen for seed in seeds]
    results = run_trials(trials, Journal(out / "journal.jsonl"), workers=options.workers, backend=options.backend,
                         ray_address=options.ray_address, trial_fn=trial_fn, progress=options.progress,
                         description="retraining")
    specs = [network(skeleton, c) for c in chosen]
    measured = latencies(table, specs, out, progress=options.progress) if latency else [None] * len(specs)
    rows = []
    for c, spec, latency_ms in zip(chosen, specs, measured):
        mine = [r for r in results if r.labels["network"] == c.name]
        tests = [r.test_top1 for r in mine if r.test_top1 is not None]
        mean, std, half = ci95(tests) if tests else (math.nan, math.nan, math.nan)
        counts = count(spec)
        # The search's own cost (eager ms measured just above when it had no table).
        its_cost = cost(spec) if config.cost == "madds" or config.latency_table else latency_ms
        rows.append({**asdict(c), "tokens": None if c.tokens is None else list(c.tokens), "network": describe_spec(spec),
                     "seeds": len(tests), "test_top1": tests, "test_mean": mean, "test_std": std, "test_ci95": half,
                     "test_reward": reward(mean / 100, its_cost) if tests and its_cost is not None else None,
                     "minival_mean": _mean([r.top1 for r in mine if r.top1 is not None]),
                     "madds": counts.madds, "params": counts.params, "latency_ms": latency_ms})
    summary = {"searches": [str(s.folder) for s in found], "skeleton": skeleton.name, "budget": asdict(budget),
               "reward": {"kind": reward.kind, "target": reward.target, "cost": config.cost},
               "latency": _latency_source(table) if latency else None,
               "seeds": list(seeds), "random_seed": random_seed, "tolerance": tolerance, "rows": rows,
               "failed": [r.key for r in results if r.top1 is None]}
    out.mkdir(parents=True, exist_ok=True)
    # Each contender as a network file (`effnet show`, `effnet lab scaling`): found-1 is
    # the best of all the searches pooled, chosen by reward, never by the test set.
    (out / "networks").mkdir(exist_ok=True)
    for c in chosen:
        write_spec(network(skeleton, c), out / "networks" / f"{c.name}.json", retrain={"role": c.role, "name": c.name,
                   "tokens": None if c.tokens is None else list(c.tokens), "proxy_reward": c.proxy_reward})
    (out / "retrain.json").write_text(json.dumps(summary, indent=2))
    (out / "retrain.md").write_text(retrain_markdown(summary))
    _plot(out / "retrain.png", rows, skeleton.name)
    return summary


def _latency_source(table: LatencyTable | None) -> str:
    if table is None:
        return "eager PyTorch, batch 1, one thread, BN folded"
    meta = table.meta
    return f"{meta['runtime']} {meta['precision']}, batch 1, {meta['threads']} thread(s), exported whole"


def network(skeleton: Skeleton, contender: Contender) -> NetworkSpec:
    if contender.tokens is None:
        return skeleton.reference
    return decode(skeleton, contender.tokens, name=f"{skeleton.name}_{contender.name}")


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def retrain_markdown(summary: dict[str, Any]) -> str:
    b = summary["budget"]
    unit = "ms" if summary["reward"]["cost"] == "latency" else "MAdds"
    lines = [f"Retrained from scratch on the {summary['skeleton']} skeleton: {b['epochs']} epochs x "
             f"{b['train_subset'] or 'all'} training images, seeds {summary['seeds']}, checkpoint chosen on "
             f"{b['minival']} minival images, test top-1 on the 10,000 test images (95% t-interval over seeds). "
             f"Latency (ms): {summary.get('latency') or 'not measured'}. Test reward: the search's reward "
             f"({summary['reward']['kind']}, T = {summary['reward']['target']:,.4g} {unit}) of the "
             "mean test top-1.", "",
             "| network | role | test top-1 (%) | test reward | minival top-1 (%) | search proxy top-1 (%) | MAdds | params | "
             "ms | stages |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in summary["rows"]:
        interval = f" ± {r['test_ci95']:.2f}" if r["seeds"] > 1 else ""
        proxy = f"{r['proxy_top1']:.2f}" if r["proxy_top1"] is not None else "-"
        latency = f"{r['latency_ms']:.2f}" if r["latency_ms"] is not None else "-"
        test_reward = f"{r['test_reward']:.4f}" if r.get("test_reward") is not None else "-"
        lines.append(f"| {r['name']} | {ROLES[r['role']]} | {r['test_mean']:.2f}{interval} (n={r['seeds']}) | "
                     f"{test_reward} | {r['minival_mean']:.2f} | {proxy} | {r['madds'] / 1e6:.2f} M | {r['params']:,} | {latency} | "
                     f"{'; '.join(r['network'])} |")
    return "\n".join(lines) + "\n"


def _plot(path: Path, rows: list[dict[str, Any]], skeleton: str) -> None:
    fig = new_figure(7, 4.2)
    ax = fig.subplots()
    for role, colour in (("found", "tab:green"), ("near", "tab:olive"), ("base", "tab:red"), ("random", "tab:gray")):
        mine = [r for r in rows if r["role"] == role and r["seeds"]]
        if mine:
            ax.errorbar([r["madds"] / 1e6 for r in mine], [r["test_mean"] for r in mine],
                        yerr=[0 if math.isnan(r["test_ci95"]) else r["test_ci95"] for r in mine],
                        fmt="o", color=colour, capsize=3, label=ROLES[role])
            for r in mine:
                ax.annotate(r["name"], (r["madds"] / 1e6, r["test_mean"]), fontsize=7, xytext=(4, 3),
                            textcoords="offset points")
    ax.set_xlabel("MAdds (M)")
    ax.set_ylabel("test top-1 (%), mean and 95% interval")
    ax.set_title(f"retrained from scratch ({skeleton} skeleton)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_png(fig, path)

"""Does the proxy rank networks as a longer training does? Kendall's tau between a search's
proxy top-1 and the minival top-1 of the same networks trained ``factor`` times longer
(more epochs on the same images, same seed, same minival), on ``archs`` networks spread
evenly over the proxy's ranking (best to worst), so the check covers the whole range the
search saw, not only its top.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from scipy import stats

from ..figures import new_figure, save_png
from ..lab.experiments import LabOptions
from ..lab.journal import Journal
from ..lab.dispatch import TrialFn, run_trials
from ..lab.trials import Budget, Trial, train_trial
from .retrain import ranked, read_search, skeleton_of
from .space import decode, describe


def spread(records: list[dict[str, Any]], archs: int) -> list[dict[str, Any]]:
    """``archs`` records at evenly spaced ranks of ``records`` by proxy top-1 (first and last
    included)."""
    by_proxy = sorted(records, key=lambda r: -r["top1"])
    if len(by_proxy) < archs:
        raise ValueError(f"the search trained {len(by_proxy)} distinct networks; the check needs {archs} "
                         "(let the search run longer, or ask for fewer with --archs)")
    if archs < 3:
        raise ValueError(f"a rank correlation needs at least 3 networks, got --archs {archs}")
    return [by_proxy[round(i * (len(by_proxy) - 1) / (archs - 1))] for i in range(archs)]


def proxy_check(search: str | Path, options: LabOptions, *, archs: int = 10, factor: int = 3,
                trial_fn: TrialFn = train_trial) -> dict[str, Any]:
    """Train the chosen networks with ``factor`` x the proxy's epochs (journaled) and write
    ``proxy_check.{json,md,png}`` under ``options.out_dir``; returns the summary."""
    if factor < 2:
        raise ValueError(f"the longer training must be at least 2x the proxy, got --factor {factor}")
    found = read_search(search)
    skeleton = skeleton_of([found])
    proxy = Budget(**found.budget)
    longer = replace(proxy, epochs=proxy.epochs * factor)
    seed = found.config["seed"]
    chosen = spread(ranked([found]), archs)
    out = Path(options.out_dir)
    trials = [Trial("proxy-check", "longer", decode(skeleton, r["tokens"]), longer, seed, data_dir=options.data_dir,
                    run_dir=str(out / "trials"), labels=(("tokens", list(r["tokens"])),)) for r in chosen]
    results = run_trials(trials, Journal(out / "journal.jsonl"), workers=options.workers, backend=options.backend,
                         ray_address=options.ray_address, trial_fn=trial_fn, progress=options.progress,
                         description="longer trainings")
    pairs = [(r["top1"], result.top1, r, result) for r, result in zip(chosen, results) if result.top1 is not None]
    tau = stats.kendalltau([p[0] for p in pairs], [p[1] for p in pairs]) if len(pairs) >= 3 else None
    summary = {"search": str(found.folder), "skeleton": skeleton.name, "proxy_budget": asdict(proxy),
               "longer_budget": asdict(longer), "factor": factor, "seed": seed, "archs": len(pairs),
               "kendall_tau": None if tau is None else float(tau.statistic),
               "p_value": None if tau is None else float(tau.pvalue),
               "networks": [{"tokens": r["tokens"], "network": describe(skeleton, r["tokens"]), "proxy_top1": p,
                             "longer_top1": q, "madds": result.madds, "params": result.params}
                            for p, q, r, result in pairs],
               "failed": [r.key for r in results if r.top1 is None]}
    out.mkdir(parents=True, exist_ok=True)
    (out / "proxy_check.json").write_text(json.dumps(summary, indent=2))
    (out / "proxy_check.md").write_text(proxy_markdown(summary))
    _plot(out / "proxy_check.png", summary)
    return summary


def proxy_markdown(summary: dict[str, Any]) -> str:
    p, q = summary["proxy_budget"], summary["longer_budget"]
    tau = "-" if summary["kendall_tau"] is None else f"{summary['kendall_tau']:.3f} (p = {summary['p_value']:.3g})"
    lines = [f"Proxy ({p['epochs']} epochs x {p['train_subset'] or 'all'} images) against {summary['factor']}x longer "
             f"training ({q['epochs']} epochs, same images, seed {summary['seed']}), minival top-1, "
             f"{summary['archs']} networks of the {summary['skeleton']} search spread over its proxy ranking.", "",
             f"**Kendall tau = {tau}**", "", "| proxy top-1 (%) | longer top-1 (%) | MAdds | params | stages |",
             "|---|---|---|---|---|"]
    for n in summary["networks"]:
        lines.append(f"| {n['proxy_top1']:.2f} | {n['longer_top1']:.2f} | {n['madds'] / 1e6:.2f} M | {n['params']:,} | "
                     f"{'; '.join(n['network'])} |")
    return "\n".join(lines) + "\n"


def _plot(path: Path, summary: dict[str, Any]) -> None:
    fig = new_figure(5.5, 4.2)
    ax = fig.subplots()
    ax.scatter([n["proxy_top1"] for n in summary["networks"]], [n["longer_top1"] for n in summary["networks"]])
    ax.set_xlabel(f"proxy minival top-1 (%), {summary['proxy_budget']['epochs']} epochs")
    ax.set_ylabel(f"minival top-1 (%), {summary['longer_budget']['epochs']} epochs")
    tau = summary["kendall_tau"]
    ax.set_title("proxy against longer training" + ("" if tau is None else f": Kendall tau {tau:.2f}"), fontsize=10)
    ax.grid(alpha=0.3)
    save_png(fig, path)

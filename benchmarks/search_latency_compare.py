"""MnasNet's question on Fashion-MNIST: does searching against the target runtime's latency
give a faster network at equal accuracy than searching against MAdds, and does the answer
hold once both searched baselines are compound-scaled?

Every network is exported whole and timed in the latency table's runtime (batch 1, its
threads; journaled, so a second run reads the times back), beside the table's prediction and
MAdds:

1. retrained from scratch (3 seeds, test top-1): the latency search's best network near T,
   the MAdds search's near-1 and the hand-designed base (`effnet nas retrain` folders);
2. compound-scaled (the laboratory's coefficients, phi 0..2, 3 fresh seeds, minival top-1):
   one curve per family against measured latency (`effnet lab scaling` folders).

    python benchmarks/search_latency_compare.py [--table T.json] [--retrain-madds DIR]
        [--retrain-latency DIR] [--scaled NAME=DIR ...] [--out DIR]

Writes OUT/comparison.{md,png} and results/search_latency_compare/latest.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
from pathlib import Path
from typing import Any

from effnet.bench.results import write_result
from effnet.figures import new_figure, save_png
from effnet.lab.report import ci95, label_accuracy_axes
from effnet.search.latency_build import measure_networks
from effnet.search.latency_table import LatencyTable
from effnet.spec_json import spec_from_dict, spec_from_file

HERE = Path(__file__).resolve().parent
SEARCH = HERE / "results" / "search"
SCALED = {"latency near-1": SEARCH / "fmnist" / "scaled_latency" / "latency-near-1",
          "MAdds near-1": SEARCH / "fmnist" / "scaled_fresh_seeds" / "near-1",
          "hand base": SEARCH / "fmnist" / "scaled_fresh_seeds" / "base"}


def retrained(folder: Path, names: tuple[str, ...], label: str) -> list[dict[str, Any]]:
    summary = json.loads((folder / "retrain.json").read_text())
    rows = []
    for row in summary["rows"]:
        if row["name"] in names:
            spec = spec_from_file(folder / "networks" / f"{row['name']}.json")
            rows.append({"network": f"{label} {row['name']}" if row["name"] != "base" else "hand base", "spec": spec,
                         "top1": row["test_top1"], "madds": row["madds"]})
    return rows


def scaled(folder: Path, family: str) -> list[dict[str, Any]]:
    trials = [t for t in json.loads((folder / "scaling.json").read_text()) if t["status"] == "ok"]
    points: dict[float, dict[str, Any]] = {}
    for t in trials:
        phi = float(t["labels"]["phi"])
        point = points.setdefault(phi, {"network": f"{family} phi {phi:g}", "family": family, "phi": phi,
                                        "spec": spec_from_dict(t["spec"]), "top1": [], "madds": t["madds"]})
        point["top1"].append(t["top1"])
    return [points[phi] for phi in sorted(points)]


def measured(rows: list[dict[str, Any]], table: LatencyTable, out: Path, rounds: int) -> None:
    """Every network timed side by side in one alternating run; the table's prediction where it
    covers the network (the scaled ones run at other image sizes than the table's space)."""
    times = measure_networks(table.target, [r["spec"] for r in rows], out / "measured", progress=True, rounds=rounds)
    for row, ms in zip(rows, times):
        row["measured_ms"] = ms
        row["predicted_ms"] = None if table.missing(row["spec"]) else table.predict_ms(row["spec"])


def line(row: dict[str, Any]) -> str:
    mean, _, half = ci95(row["top1"])
    interval = "" if math.isnan(half) else f" ± {half:.2f}"
    return (f"| {row['network']} | {mean:.2f}{interval} (n={len(row['top1'])}) | {row['madds'] / 1e6:.2f} M | "
            f"{'-' if row['predicted_ms'] is None else format(row['predicted_ms'], '.3f')} | {row['measured_ms']:.3f} |")


def plot(path: Path, families: dict[str, list[dict[str, Any]]], runtime: str) -> None:
    fig = new_figure(7, 4.5)
    ax = fig.subplots()
    for family, points in families.items():
        stats = [ci95(p["top1"]) for p in points]
        ax.errorbar([p["measured_ms"] for p in points], [m for m, _, _ in stats],
                    yerr=[0 if math.isnan(h) else h for _, _, h in stats], marker="o", capsize=3, label=family)
        for p, (m, _, _) in zip(points, stats):
            ax.annotate(f"phi={p['phi']:g}", (p["measured_ms"], m), fontsize=7, xytext=(4, -10), textcoords="offset points")
    label_accuracy_axes(ax, "Searched and hand-designed baselines, compound-scaled",
                        f"measured latency (ms, {runtime}, batch 1)")
    save_png(fig, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", type=Path, default=SEARCH / "latency" / "fmnist_executorch_fp32.json")
    parser.add_argument("--retrain-madds", type=Path, default=SEARCH / "fmnist" / "retrain")
    parser.add_argument("--retrain-latency", type=Path, default=SEARCH / "fmnist" / "latency-retrain")
    parser.add_argument("--out", type=Path, default=SEARCH / "fmnist" / "latency_compare")
    parser.add_argument("--rounds", type=int, default=15, help="alternating rounds of every network (default 15)")
    args = parser.parse_args()
    table = LatencyTable.load(args.table)
    runtime = f"{table.meta['runtime']} {table.target.precision}, {table.target.threads} thread(s)"
    first = retrained(args.retrain_latency, ("found-1", "near-1", "base"), "latency")
    first += retrained(args.retrain_madds, ("near-1",), "MAdds")
    families = {family: scaled(folder, family) for family, folder in SCALED.items() if (folder / "scaling.json").is_file()}
    measured(first + [p for points in families.values() for p in points], table, args.out, args.rounds)
    head = "| network | top-1 (%) | MAdds | predicted ms | measured ms |\n|---|---|---|---|---|"
    text = "\n".join([
        f"# Latency-targeted against MAdds-targeted search (Fashion-MNIST), measured in {runtime}", "",
        f"CPU: {table.meta['cpu']['model']}; every network exported whole; predicted: the latency table.", "",
        "## Retrained from scratch (test top-1, 3 seeds, 95% t-interval)", "", head, *map(line, first), "",
        "## Compound-scaled (minival top-1, 3 fresh seeds)", "", head,
        *(line(p) for points in families.values() for p in points), ""])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "comparison.md").write_text(text)
    plot(args.out / "comparison.png", families, runtime)
    rows = [{k: v for k, v in r.items() if k != "spec"} for r in first + [p for ps in families.values() for p in ps]]
    write_result("search_latency_compare", {"rows": rows, "runtime": runtime, "table": str(args.table)}, text,
                 root=HERE / "results", threads=table.target.threads, command=shlex.join([sys.executable, *sys.argv]))
    print(text)
    print(f"plot: {args.out / 'comparison.png'}")


if __name__ == "__main__":
    main()

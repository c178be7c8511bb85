"""`effnet models`: every registered model beside the paper's numbers."""

from __future__ import annotations

import argparse

from ..counting import count
from ..zoo import get_spec, list_models, paper_entry
from ._format import billions, exact, print_json, print_table


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("models", help="list models with params and MAdds beside the paper's Table 2")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style filter, e.g. 'efficientnet_b*'")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def model_records(pattern: str = "*") -> list[dict[str, object]]:
    records = []
    for name in list_models(pattern):
        spec = get_spec(name)
        counts = count(spec)
        paper = paper_entry(name)
        records.append({
            "name": name,
            "resolution": spec.resolution,
            "params": counts.params,
            "madds": counts.madds,
            "paper_params_m": paper.params_m if paper else None,
            "paper_flops_b": paper.flops_b if paper else None,
            "paper_top1": paper.top1 if paper else None,
            "paper_source": paper.source if paper else None,
        })
    return records


def run(args: argparse.Namespace) -> int:
    records = model_records(args.pattern)
    if not records:
        raise ValueError(f"no model matches {args.pattern!r}; try `effnet models` for the full list")
    if args.json:
        print_json(records)
        return 0
    rows = [
        (r["name"], r["resolution"], exact(r["params"]),  # type: ignore[arg-type]
         r["paper_params_m"] and f"{r['paper_params_m']}M", billions(r["madds"]),  # type: ignore[arg-type]
         r["paper_flops_b"] and f"{r['paper_flops_b']}B", r["paper_top1"])
        for r in records
    ]
    print_table("effnet models (ours: counted from the spec; paper: Tan & Le 2019, V2: Tan & Le 2021)",
                ["model", "res", "params", "paper params", "MAdds", "paper FLOPS", "paper top-1"], rows,
                caption="MAdds count convs, SE and FC at the native resolution (paper 'FLOPS' = multiply-adds).")
    return 0

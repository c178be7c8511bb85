"""`effnet show NAME`: the per-stage table in the shape of the paper's Table 1."""

from __future__ import annotations

import argparse

from ..blockstring import format_stage
from ..counting import count
from ..zoo import get_spec
from ._format import billions, exact, print_json, print_table
from ._model import positive_int


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("show", help="per-stage table of a model (paper Table 1)")
    p.add_argument("name", help="a model name from `effnet models`")
    p.add_argument("--resolution", type=positive_int, default=None, help="input size (default: the model's own)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def stage_records(spec, resolution=None) -> list[dict[str, object]]:  # type: ignore[no-untyped-def]
    counts = count(spec, resolution)
    blocks = ["-"] + [format_stage(s) for s in spec.stages] + ["-"]
    return [
        {"stage": i + 1, "operator": row.operator, "resolution": list(row.resolution),
         "channels": row.channels, "layers": row.layers, "params": row.params, "madds": row.madds,
         "block_string": block}
        for i, (row, block) in enumerate(zip(counts.rows, blocks))
    ]


def run(args: argparse.Namespace) -> int:
    spec = get_spec(args.name)
    records = stage_records(spec, args.resolution)
    if args.json:
        print_json({"name": spec.name, "stages": records})
        return 0
    total = count(spec, args.resolution)
    rows = [(r["stage"], r["operator"], "x".join(map(str, r["resolution"])), r["channels"],  # type: ignore[call-overload]
             r["layers"], exact(r["params"]), billions(r["madds"]), r["block_string"])  # type: ignore[arg-type]
            for r in records]
    print_table(f"{spec.name}: {exact(total.params)} params, {billions(total.madds)} MAdds "
                f"at {total.resolution[0]}x{total.resolution[1]}",
                ["stage", "operator", "input res", "channels", "layers", "params", "MAdds", "block string"], rows,
                caption=f"activation {spec.activation}, BN eps {spec.bn_eps:g}, padding {spec.padding}, "
                        f"dropout {spec.dropout:g}, drop path {spec.drop_path_rate:g}")
    return 0

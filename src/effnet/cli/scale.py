"""`effnet scale BASE`: compound (or explicit) scaling of any registered network."""

from __future__ import annotations

import argparse

from ..counting import count
from ..scaling import ALPHA, BETA, GAMMA, Multipliers, compound_coefficients, scale_by
from ..zoo import get_spec
from ._format import billions, exact, millions, print_json, print_table
from .show import stage_records


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("scale", help="scale a network by compound phi or explicit multipliers")
    p.add_argument("base", help="the baseline model, e.g. efficientnet_b0, mobilenet_v2, resnet50")
    p.add_argument("--phi", type=float, default=None, help="compound coefficient (paper eq. 3)")
    p.add_argument("--alpha", type=float, default=ALPHA, help=f"depth base (default {ALPHA})")
    p.add_argument("--beta", type=float, default=BETA, help=f"width base (default {BETA})")
    p.add_argument("--gamma", type=float, default=GAMMA, help=f"resolution base (default {GAMMA})")
    p.add_argument("--width", type=float, default=None, help="explicit width multiplier")
    p.add_argument("--depth", type=float, default=None, help="explicit depth multiplier")
    p.add_argument("--resolution", type=float, default=None, help="explicit resolution multiplier")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.set_defaults(func=run)


def multipliers_from_args(args: argparse.Namespace) -> tuple[Multipliers, str]:
    explicit = (args.width, args.depth, args.resolution)
    if args.phi is not None and any(v is not None for v in explicit):
        raise ValueError("give either --phi (compound) or --width/--depth/--resolution, not both")
    if args.phi is not None:
        m = compound_coefficients(args.phi, args.alpha, args.beta, args.gamma)
        return m, f"compound phi={args.phi:g} (alpha={args.alpha:g}, beta={args.beta:g}, gamma={args.gamma:g})"
    if all(v is None for v in explicit):
        raise ValueError("nothing to scale: give --phi or at least one of --width/--depth/--resolution")
    m = Multipliers(width=args.width or 1.0, depth=args.depth or 1.0, resolution=args.resolution or 1.0)
    return m, f"width x{m.width:g}, depth x{m.depth:g}, resolution x{m.resolution:g}"


def run(args: argparse.Namespace) -> int:
    base = get_spec(args.base)
    multipliers, how = multipliers_from_args(args)
    scaled = scale_by(base, multipliers)
    before, after = count(base), count(scaled)
    growth = after.madds / before.madds
    summary = {
        "base": base.name, "scaled": scaled.name, "how": how,
        "multipliers": {"width": multipliers.width, "depth": multipliers.depth,
                        "resolution": multipliers.resolution},
        "resolution": [base.resolution, scaled.resolution],
        "params": [before.params, after.params], "madds": [before.madds, after.madds],
        "madds_growth": growth, "predicted_growth": multipliers.flops_ratio,
        "two_to_phi": 2 ** args.phi if args.phi is not None else None,
    }
    if args.json:
        print_json({**summary, "stages": stage_records(scaled)})
        return 0
    rows = [(r["stage"], r["operator"], "x".join(map(str, r["resolution"])), r["channels"],  # type: ignore[call-overload]
             r["layers"], exact(r["params"]), billions(r["madds"])) for r in stage_records(scaled)]  # type: ignore[arg-type]
    print_table(f"{base.name} scaled by {how}", ["stage", "operator", "input res", "channels", "layers",
                                                 "params", "MAdds"], rows)
    reference = f"; 2^phi = {summary['two_to_phi']:.3f}" if args.phi is not None else ""
    print(f"resolution {base.resolution} -> {scaled.resolution}; params {millions(before.params)} -> "
          f"{millions(after.params)}; MAdds {billions(before.madds)} -> {billions(after.madds)}: "
          f"x{growth:.3f} measured, x{multipliers.flops_ratio:.3f} by d*w^2*r^2{reference}")
    return 0

"""`effnet nas proxy-check SEARCH`: Kendall's tau between a search's proxy ranking and a
longer training of networks spread over it (docs/search.md)."""

from __future__ import annotations

import argparse

from ..search.proxy_check import proxy_check
from ._lab import add_runner, options_from
from ._names import add_old_name


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    add_old_name(subparsers, "search-proxy-check", "nas proxy-check", configure)


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("search", metavar="SEARCH", help="a search folder (`effnet nas search --out`)")
    p.add_argument("--archs", type=int, default=10, help="networks spread over the proxy's ranking (default 10)")
    p.add_argument("--factor", type=int, default=3, help="times the proxy's epochs (default 3)")
    add_runner(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    summary = proxy_check(args.search, options_from(args), archs=args.archs, factor=args.factor)
    tau = summary["kendall_tau"]
    print(f"Kendall tau between the proxy and {args.factor}x longer training over {summary['archs']} networks: "
          + ("-" if tau is None else f"{tau:.3f} (p = {summary['p_value']:.3g})"))
    print(f"table: {args.out / 'proxy_check.md'}, plot: {args.out / 'proxy_check.png'}")
    return 0

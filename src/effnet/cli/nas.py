"""`effnet nas search|retrain|proxy-check|benchmark|latency-table|latency-check`: the architecture search that found B0
(MnasNet's space and rewards; docs/search.md). Each takes `--recipe configs/nas/NAME.yaml`."""

from __future__ import annotations

import argparse

from . import _nas_latency, search, search_benchmark, search_proxy_check, search_retrain
from ._names import add_group


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    add_group(subparsers, "nas", "the architecture search that found B0 (MnasNet's space and rewards)", [
        ("search", "multi-objective architecture search on real data, journaled and resumable", search.configure),
        ("retrain", "retrain a search's top networks beside the hand design and random networks of the same "
                    "MAdds (test top-1, 3 seeds)", search_retrain.configure),
        ("proxy-check", "does the search's proxy rank networks as a longer training does (Kendall tau)",
         search_proxy_check.configure),
        ("benchmark", "check the search strategies on a published table (NAS-Bench-Graph)",
         search_benchmark.configure),
        ("latency-table", "measure every piece of a search space in a deployed runtime (batch 1), resumable",
         _nas_latency.configure_table),
        ("latency-check", "how well a latency table predicts whole networks measured in its runtime (Kendall tau, "
                          "MAPE, against MAdds)", _nas_latency.configure_check),
    ])

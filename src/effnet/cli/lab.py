"""`effnet lab coefficients|scaling|width-grid`: the paper's compound-scaling experiments on
real data (docs/lab.md). Each takes `--recipe configs/lab/NAME.yaml`."""

from __future__ import annotations

import argparse

from . import experiment, search_coefficients
from ._names import add_group


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    add_group(subparsers, "lab", "the paper's compound-scaling experiments on real data", [
        ("coefficients", "grid-search alpha, beta, gamma under alpha*beta^2*gamma^2 ~= 2 (paper step 1)",
         search_coefficients.configure),
        ("scaling", "compound vs width/depth/resolution scaling at matched MAdds (paper step 2, Table 3)",
         experiment.configure_scaling),
        ("width-grid", "Figure 4: width scaling under different depth and resolution",
         experiment.configure_width_grid),
    ])

"""One PNG saver for every plot effnet draws (laboratory, search, evaluation, CAM)."""

from __future__ import annotations

import os
from pathlib import Path

from matplotlib.figure import Figure

from .atomic import write_atomic

DPI = 120


def new_figure(width: float, height: float, **options: object) -> Figure:
    """A figure outside pyplot: no global figure state, no GUI backend, nothing to close."""
    return Figure(figsize=(width, height), **options)


def save_png(fig: Figure, path: str | os.PathLike[str], *, dpi: int | None = DPI, tight: bool = True,
             make_folder: bool = True) -> Path:
    """The figure, laid out, as a PNG at ``path`` (its folder made if need be, unless
    ``make_folder`` is false), written atomically so that a page or a report never shows half
    a picture."""
    if tight:
        fig.tight_layout()
    return write_atomic(path, lambda partial: fig.savefig(partial, dpi=dpi if dpi else "figure", format="png"),
                        make_folder=make_folder)

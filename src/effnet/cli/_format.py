"""Shared output helpers for the CLI: rich tables on a terminal, JSON on request."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table


def console() -> Console:
    return Console(file=sys.stdout, width=160 if not sys.stdout.isatty() else None)


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[object]],
                caption: str | None = None) -> None:
    table = Table(title=title, caption=caption)
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*("-" if cell is None else str(cell) for cell in row))
    console().print(table)


def print_json(data: object) -> None:
    json.dump(data, sys.stdout, indent=2)
    sys.stdout.write("\n")


def millions(n: int) -> str:
    return f"{n / 1e6:.2f}M"


def exact(n: int) -> str:
    """A count to the unit, grouped: parameter counts are compared exactly."""
    return f"{n:,}"


def billions(n: int) -> str:
    return f"{n / 1e9:.3f}B"

"""The error a config raises and the small checks that word it: a value among choices, a
number in a range, and the close names a misspelt key or value suggests."""

from __future__ import annotations

import difflib
import typing
from typing import Any


class ConfigError(ValueError):
    """A config value or key that cannot work; the message names it and says what would."""


def did_you_mean(name: str, choices: typing.Iterable[str]) -> str:
    """The hint " Did you mean a, b?" naming the close matches of ``name`` among ``choices``
    (empty when none is close)."""
    close = difflib.get_close_matches(name, list(choices), n=3, cutoff=0.5)
    return f" Did you mean {', '.join(close)}?" if close else ""


def check_choice(key: str, value: Any, choices: tuple[Any, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{key} must be one of {', '.join(map(str, choices))}; got {value!r}."
                          f"{did_you_mean(str(value), map(str, choices))}")


def check_range(key: str, value: float, low: float, high: float | None = None, *, open_high: bool = False) -> None:
    ok = value >= low and (high is None or (value < high if open_high else value <= high))
    if not ok:
        upper = "" if high is None else (f" and < {high}" if open_high else f" and <= {high}")
        raise ConfigError(f"{key} must be >= {low}{upper}; got {value}")


__all__ = ["ConfigError", "check_choice", "check_range", "did_you_mean"]

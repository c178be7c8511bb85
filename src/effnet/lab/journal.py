"""An append-only JSON-lines journal of finished trials: an interrupted experiment restarts
without recomputing what is already there."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from ..atomic import append_json_line, read_json_lines
from .trials import TrialResult


class Journal:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def load(self) -> dict[str, TrialResult]:
        """Finished trials by key. A torn last line (a kill mid-write) is skipped with a warning."""
        results: dict[str, TrialResult] = {}
        for number, record in enumerate(read_json_lines(self.path), 1):
            try:
                result = TrialResult.from_dict(record)
            except (ValueError, KeyError, TypeError) as error:
                warnings.warn(f"{self.path}: unreadable journal record {number} skipped ({error})", stacklevel=2)
                continue
            results[result.key] = result
        return results

    def append(self, result: TrialResult) -> None:
        """One line per trial, flushed and synced so that a crash loses at most that line."""
        append_json_line(self.path, result.to_dict())

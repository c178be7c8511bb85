"""An append-only JSON-lines journal of finished trials: an interrupted experiment restarts
without recomputing what is already there."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

from .trials import TrialResult


class Journal:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def load(self) -> dict[str, TrialResult]:
        """Finished trials by key. A torn last line (a kill mid-write) is skipped with a warning."""
        results: dict[str, TrialResult] = {}
        if not self.path.exists():
            return results
        for number, line in enumerate(self.path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                result = TrialResult.from_dict(json.loads(line))
            except (ValueError, KeyError, TypeError) as error:
                warnings.warn(f"{self.path}:{number}: unreadable journal line skipped ({error})", stacklevel=2)
                continue
            results[result.key] = result
        return results

    def append(self, result: TrialResult) -> None:
        """One line per trial, flushed and synced so that a crash loses at most that line."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as file:
            file.write(json.dumps(result.to_dict(), sort_keys=True) + "\n")
            file.flush()
            os.fsync(file.fileno())

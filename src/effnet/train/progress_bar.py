"""The console a run reports to, and the per-epoch progress bar (rich): loss, accuracy,
images/s, elapsed time and ETA."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)


def console() -> Console:
    # soft_wrap: log lines stay whole in files and CI logs (no wrapping at 80 columns).
    return Console(file=sys.stderr, soft_wrap=True)


class EpochProgress:
    """A bar over one epoch's batches; does nothing when ``enabled`` is false (other ranks,
    ``run.progress=false``)."""

    def __init__(self, enabled: bool, epoch: int, epochs: int, total: int, completed: int = 0) -> None:
        self._progress: Progress | None = None
        if not enabled:
            return
        self._progress = Progress(
            TextColumn(f"epoch {epoch + 1}/{epochs}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            console=console(), refresh_per_second=2,
        )
        self._task = self._progress.add_task("train", total=total, completed=completed, stats="")
        self._progress.start()

    def update(self, loss: float, acc: float, images_per_s: float, advance: int = 1) -> None:
        if self._progress is not None:
            stats = f"loss {loss:.4f}  acc {acc:.2f}%  {images_per_s:,.0f} img/s"
            self._progress.update(self._task, advance=advance, stats=stats)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


__all__ = ["EpochProgress", "console"]

"""Per-epoch metrics written three ways into a run folder: JSON lines (``metrics.jsonl``, one
record per epoch, every field), CSV (``metrics.csv``, for spreadsheets; columns fixed by the
first record), and TensorBoard (``tensorboard/``) when it is installed
(``pip install tensorboard``)."""

from __future__ import annotations

import csv
import json
import numbers
from pathlib import Path
from typing import Any

from ..weights import RunFolder


class MetricsWriter:
    def __init__(self, run: RunFolder, *, tensorboard: bool = True) -> None:
        self.run = run
        run.path.mkdir(parents=True, exist_ok=True)
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is optional
                self._tb = None
            else:
                self._tb = SummaryWriter(str(run.tensorboard))

    @property
    def tensorboard_enabled(self) -> bool:
        return self._tb is not None

    def write(self, record: dict[str, Any]) -> None:
        with open(self.run.metrics, "a") as f:
            f.write(json.dumps(record) + "\n")
        csv_path = self.run.metrics_csv
        scalars = {k: v for k, v in record.items() if not isinstance(v, (list, dict))}
        if csv_path.exists():
            with open(csv_path, newline="") as f:
                columns = next(csv.reader(f), list(scalars))
        else:
            columns = list(scalars)
            with open(csv_path, "w", newline="") as f:
                csv.writer(f).writerow(columns)
        with open(csv_path, "a", newline="") as f:
            csv.writer(f).writerow(["" if scalars.get(c) is None else scalars.get(c) for c in columns])
        if self._tb is not None:
            step = int(record.get("epoch", 0))
            for key, value in scalars.items():
                if isinstance(value, numbers.Real) and key != "epoch":
                    self._tb.add_scalar(key, float(value), step)
            self._tb.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


__all__ = ["MetricsWriter", "read_jsonl"]

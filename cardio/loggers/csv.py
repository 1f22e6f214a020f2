"""CSV sink: ``progress.csv`` in the run dir, one row per log call, one column per metric (SB3-style names).

When a new metric name appears the file is rewritten with the wider header, so every row keeps every column;
plotting tools that read SB3's ``progress.csv`` read this one.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path


class CSVSink:
    """Writes metrics rows to a CSV file.

    Args:
        path: the CSV file; parent directories are created.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.columns: list[str] = ["step"]
        self.rows: list[dict[str, float]] = []
        self.file = self.path.open("w", newline="")
        self.writer = csv.DictWriter(self.file, fieldnames=self.columns)
        self.writer.writeheader()

    def write(self, metrics: Mapping[str, float], step: int) -> None:
        row = {"step": step, **metrics}
        self.rows.append(row)
        new = [k for k in metrics if k not in self.columns]
        if new:  # rare: rewrite everything with the wider header
            self.columns += sorted(new)
            self.file.close()
            self.file = self.path.open("w", newline="")
            self.writer = csv.DictWriter(self.file, fieldnames=self.columns)
            self.writer.writeheader()
            self.writer.writerows(self.rows)
        else:
            self.writer.writerow(row)
        self.file.flush()

    def close(self) -> None:
        self.file.close()

"""CSV sink: ``progress.csv`` in the run dir, one row per log call, one column per metric (SB3-style names).

When a new metric name appears the file is rewritten with the wider header, so every row keeps every column;
plotting tools that read SB3's ``progress.csv`` read this one. The file is opened on the first write, so a
resumed run can first keep the rows up to its checkpoint (:meth:`CSVSink.resume`) and append after them.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path
from typing import Any


class CSVSink:
    """Writes metrics rows to a CSV file.

    Args:
        path: the CSV file; parent directories are created.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.columns: list[str] = ["step"]
        self.rows: list[dict[str, Any]] = []
        self.file: Any = None
        self.writer: csv.DictWriter[str] | None = None

    def _rewrite(self) -> None:
        if self.file is not None:
            self.file.close()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.file = self.path.open("w", newline="")
        self.writer = csv.DictWriter(self.file, fieldnames=self.columns)
        self.writer.writeheader()
        self.writer.writerows(self.rows)

    def resume(self, step: int) -> None:
        """Keep the existing rows with ``step <= step`` (a resumed run re-logs anything after its checkpoint)."""
        if not self.path.is_file():
            return
        with self.path.open(newline="") as f:
            reader = csv.DictReader(f)
            columns = list(reader.fieldnames or ["step"])
            rows = [r for r in reader if r.get("step") not in (None, "") and int(float(r["step"])) <= step]
        self.columns = columns if "step" in columns else ["step", *columns]
        self.rows = rows
        self._rewrite()

    def write(self, metrics: Mapping[str, float], step: int) -> None:
        row = {"step": step, **metrics}
        self.rows.append(row)
        new = [k for k in metrics if k not in self.columns]
        if new or self.writer is None:  # first write, or rare: rewrite everything with the wider header
            self.columns += sorted(new)
            self._rewrite()
        else:
            self.writer.writerow(row)
        self.file.flush()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file, self.writer = None, None

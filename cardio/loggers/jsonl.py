"""JSONL sink: ``metrics.jsonl`` in the run dir, one JSON object per log call: ``{"step": ..., "<metric>": ...}``.

Unlike the CSV, a row holds only the metrics of that call (no empty columns) and new metric names never
rewrite the file: handy for ``pandas.read_json(path, lines=True)`` and ``jq``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any


class JSONLSink:
    """Appends one JSON line per log call.

    Args:
        path: the ``.jsonl`` file; parent directories are created. Opened (truncated) on the first write.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.file: Any = None
        self.keep_until: int | None = None

    def resume(self, step: int) -> None:
        """Keep the existing lines with ``step <= step`` and append after them."""
        if not self.path.is_file():
            return
        lines = [ln for ln in self.path.read_text().splitlines() if ln.strip()]
        kept = []
        for line in lines:
            try:
                if json.loads(line)["step"] <= step:
                    kept.append(line)
            except (ValueError, KeyError):  # a line cut short by a kill: drop it
                continue
        self.path.write_text("".join(f"{ln}\n" for ln in kept))
        self.file = self.path.open("a")

    def write(self, metrics: Mapping[str, float], step: int) -> None:
        if self.file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.file = self.path.open("w")
        # NaN/inf are not JSON: write them as null
        row = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in metrics.items()}
        self.file.write(json.dumps({"step": step, **row}) + "\n")
        self.file.flush()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None

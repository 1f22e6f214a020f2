"""Logger: one metrics path. Runner, gatherer and agent hand back ``{name: float}`` dicts; sinks write them.

A sink is any object with ``write(metrics, step)`` and ``close()``. Add one by writing that small class and a
``configs/logger/<name>.yaml`` that puts it under ``sinks.<name>`` (see docs/logging.md).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol, runtime_checkable


@runtime_checkable
class Sink(Protocol):
    """A destination for metrics: console, CSV, TensorBoard, W&B..."""

    def write(self, metrics: Mapping[str, float], step: int) -> None: ...

    def close(self) -> None: ...


class Logger:
    """Fans metrics dicts out to sinks; a failing sink is warned about once and skipped, training goes on.

    Args:
        sinks: named sinks, e.g. ``{"console": ConsoleSink()}``; a list works too.
        run_dir: if given, a CSV sink writing ``<run_dir>/progress.csv`` is always added.
    """

    def __init__(self, sinks: Mapping[str, Sink] | list[Sink] | None = None, run_dir: str | Path | None = None):
        from cardio.loggers.csv import CSVSink

        named = dict(sinks) if isinstance(sinks, Mapping) else {f"sink{i}": s for i, s in enumerate(sinks or [])}
        if run_dir is not None and not any(isinstance(s, CSVSink) for s in named.values()):
            named["csv"] = CSVSink(Path(run_dir) / "progress.csv")
        self.sinks: dict[str, Sink] = named
        self.failed: set[str] = set()

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        """Write ``metrics`` at env step ``step`` to every working sink."""
        if not metrics:
            return
        for name, sink in self.sinks.items():
            if name in self.failed:
                continue
            try:
                sink.write(metrics, step)
            except Exception as exc:  # a logging failure must never stop training
                self.failed.add(name)
                warnings.warn(f"logger sink {name!r} failed and is now skipped: {exc!r}", stacklevel=2)

    def close(self) -> None:
        for name, sink in self.sinks.items():
            try:
                sink.close()
            except Exception as exc:
                warnings.warn(f"logger sink {name!r} failed to close: {exc!r}", stacklevel=2)

"""Logger: one metrics path. Runner, gatherer and agent hand back ``{name: float}`` dicts; sinks write them.

A sink is any object with ``write(metrics, step)`` and ``close()``. Optional hooks, called when present:

``start(total_steps, step)``   the run begins (or resumes at ``step``) and will stop at ``total_steps``.
``progress(step)``             after every runner step: cheap, for live progress lines.
``log_config(config)``         the resolved run config as a plain dict (W&B config, TensorBoard text).
``resume(step)``               a resumed run continues from ``step``: drop anything logged after it.
``close(exit_code=0)``         ``exit_code`` is passed when the sink's ``close`` accepts it (W&B marks a failed run).

Add one by writing that small class and a ``configs/logger/<name>.yaml`` that puts it under ``sinks.<name>``
(docs/logging.md walks through a real example). A failing sink is warned about once and skipped: logging never
stops training, except for a full disk (``ENOSPC``/``EDQUOT``), which raises :class:`~cardio.errors.DiskFullError`
naming the file: every later write, checkpoints included, would fail too.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from cardio.errors import DiskFullError, is_disk_full


@runtime_checkable
class Sink(Protocol):
    """A destination for metrics: console, CSV, TensorBoard, W&B..."""

    def write(self, metrics: Mapping[str, float], step: int) -> None: ...

    def close(self) -> None: ...


class Logger:
    """Fans metrics dicts out to sinks; a failing sink is warned about once and skipped, training goes on.

    Args:
        sinks: named sinks, e.g. ``{"console": ConsoleSink()}``; a list works too; ``None`` values are dropped
            (so a config can switch a sink off with ``logger.sinks.console=null``).
        run_dir: if given, ``<run_dir>/progress.csv`` and ``<run_dir>/metrics.jsonl`` are always written.
    """

    def __init__(
        self, sinks: Mapping[str, Sink | None] | list[Sink] | None = None, run_dir: str | Path | None = None
    ) -> None:
        from cardio.loggers.csv import CSVSink
        from cardio.loggers.jsonl import JSONLSink

        named = dict(sinks) if isinstance(sinks, Mapping) else {f"sink{i}": s for i, s in enumerate(sinks or [])}
        named = {k: v for k, v in named.items() if v is not None}
        if run_dir is not None:
            if not any(isinstance(s, CSVSink) for s in named.values()):
                named["csv"] = CSVSink(Path(run_dir) / "progress.csv")
            if not any(isinstance(s, JSONLSink) for s in named.values()):
                named["jsonl"] = JSONLSink(Path(run_dir) / "metrics.jsonl")
        self.sinks: dict[str, Any] = named
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.failed: set[str] = set()
        self.step = -1
        """Env step of the last :meth:`log` call (saved in checkpoints; ``-1`` before the first)."""
        self._progress_sinks = [(n, s) for n, s in named.items() if hasattr(s, "progress")]

    def _call(self, name: str, sink: Any, method: str, *args: Any) -> None:
        if name in self.failed:
            return
        try:
            getattr(sink, method)(*args)
        except OSError as exc:
            if is_disk_full(exc):  # every later write would fail too, checkpoints included: stop with one line
                where = getattr(sink, "path", None) or getattr(sink, "log_dir", None) or exc.filename or self.run_dir
                raise DiskFullError(where, exc) from exc
            self.failed.add(name)
            warnings.warn(f"logger sink {name!r} failed in {method}() and is now skipped: {exc!r}", stacklevel=3)
        except Exception as exc:  # a logging failure must never stop training
            self.failed.add(name)
            warnings.warn(f"logger sink {name!r} failed in {method}() and is now skipped: {exc!r}", stacklevel=3)

    def _broadcast(self, method: str, *args: Any) -> None:
        for name, sink in self.sinks.items():
            if hasattr(sink, method):
                self._call(name, sink, method, *args)

    def start(self, total_steps: int, step: int = 0) -> None:
        """The run begins (or resumes) at env step ``step`` and will stop at ``total_steps``."""
        self._broadcast("start", total_steps, step)

    def progress(self, step: int) -> None:
        """Env steps so far; called after every runner step, so it only reaches sinks that have ``progress``."""
        for name, sink in self._progress_sinks:
            self._call(name, sink, "progress", step)

    def log_config(self, config: Mapping[str, Any]) -> None:
        """Hand the resolved run config (a plain nested dict) to sinks that record it."""
        self._broadcast("log_config", config)

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        """Write ``metrics`` at env step ``step`` to every working sink."""
        if not metrics:
            return
        self.step = step
        for name, sink in self.sinks.items():
            self._call(name, sink, "write", metrics, step)

    def state_dict(self) -> dict[str, Any]:
        """The logger step, so a resumed run knows which logged rows came after the checkpoint."""
        return {"step": self.step}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume at the saved step: sinks with ``resume(step)`` drop rows logged after it (appending after)."""
        self.step = int(state["step"])
        self._broadcast("resume", self.step)

    def close(self, exit_code: int = 0) -> None:
        """Close every sink (also failed ones: W&B must ``finish``); ``exit_code != 0`` marks a failed run.

        Args:
            exit_code: 0 on success, 130 after Ctrl-C, 1 after an error...
        """
        for name, sink in self.sinks.items():
            try:
                if "exit_code" in inspect.signature(sink.close).parameters:
                    sink.close(exit_code=exit_code)
                else:
                    sink.close()
            except Exception as exc:
                warnings.warn(f"logger sink {name!r} failed to close: {exc!r}", stacklevel=2)

"""What every run dir holds, wherever it is made: ``make train``, a ``make multirun`` job, a ``make sweep`` trial.

::

    <run dir>/
      config.yaml    the resolved config the run was built from           cardio.build.save_config
      progress.csv   metrics, one row per log call                         cardio.loggers.Logger
      metrics.jsonl  the same metrics, one JSON object per line            cardio.loggers.Logger
      last.ckpt      the resume checkpoint, a pickle (docs/checkpoints.md) cardio.runner.Runner
      weights.npz    the agent as plain arrays, what evaluation loads      cardio.runner.Runner
      final.json     overrides, how the run ended, final eval value        write_final
      train.log      Python logging records of the run                     Hydra's job logging, or log_to

A file added to every run dir belongs in a writer every caller shares (the Runner, the logger, or a function
here), never in ``scripts/train.py`` alone. One writer per file, shared by every caller, so
``scripts/evaluate.py run=<dir>``, ``make plot`` and ``resume=<dir>`` read a sweep trial exactly as they read a
training run. ``scripts/train.py`` gets ``final.json`` and ``train.log`` from Hydra (the multirun callback and
Hydra's job logging); the sweep driver, which builds runs without Hydra's app, calls :func:`write_final` and
:func:`log_to` itself.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

FILES = (
    "config.yaml",
    "progress.csv",
    "metrics.jsonl",
    "last.ckpt",
    "weights.npz",
    "best.ckpt",
    "final.json",
    "train.log",
    "monitor.csv",
    "evaluations.npz",
    "provenance.json",
)
"""The files of a finished run dir (``train.log`` may be empty; ``diff.patch`` is added when the source tree had
uncommitted changes, see :mod:`cardio.provenance`)."""

FINAL = "final.json"
LOG = "train.log"


def write_final(
    run_dir: str | Path, overrides: Sequence[str], status: str, value: float | None, reason: str | None = None
) -> Path:
    """Write ``<run_dir>/final.json``: the run's overrides, how it ended and its final value.

    Args:
        run_dir: the run dir (created if missing).
        overrides: the command-line overrides the run was composed with.
        status: ``COMPLETED``, ``FAILED`` (Hydra's job status names) or ``PRUNED`` (a sweep trial stopped early).
        value: the final ``eval/mean_reward`` (what ``scripts/train.py`` returns); ``None`` when there is none.
            A non-finite value is written as ``None`` (JSON has no NaN).
        reason: why the run stopped early or failed, e.g. ``diverged: train/loss=nan at env step 300``.
    """
    record: dict[str, object] = {
        "overrides": list(overrides),
        "status": status,
        "value": float(value) if value is not None and math.isfinite(value) else None,
    }
    if reason is not None:
        record["reason"] = reason
    path = Path(run_dir) / FINAL
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1))
    return path


@contextmanager
def log_to(run_dir: str | Path, level: int = logging.INFO) -> Iterator[Path]:
    """Copy Python logging records to ``<run_dir>/train.log`` while the block runs, as Hydra's job logging
    does for ``scripts/train.py`` (used where runs are built without Hydra's app: sweep trials)."""
    path = Path(run_dir) / LOG
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield path
    finally:
        root.removeHandler(handler)
        handler.close()

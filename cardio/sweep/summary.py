"""Hydra multirun summary: per config, the mean and std of the final evaluation over seeds.

``make multirun seed=0,1,2 agent.lr=1e-3,3e-4`` runs six jobs. This callback (``hydra.callbacks`` in
``configs/train.yaml``) writes each job's outcome to ``<job dir>/final.json`` when the job ends, in whatever
process the launcher ran it (basic, joblib or submitit), and when the multirun ends it reads them all back,
groups jobs whose overrides differ only in ``exclude_keys`` (the seed), and writes ``<sweep dir>/summary.csv``
and prints it::

    config             n  mean   std    min    max    failed
    agent.lr=0.0003    3  212.4  40.1   168.0  265.0  0
    agent.lr=0.001     3  500.0  0.0    500.0  500.0  0

The value is what ``scripts/train.py``'s ``main`` returns: the final ``eval/mean_reward``. A job that did not
complete (only SLURM's launcher hands such jobs back instead of stopping the multirun) is counted as failed, and
after the summary the multirun exits with status 1.
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from cardio.rundir import write_final

FIELDS = ("config", "n", "mean", "std", "min", "max", "failed", "values")


class MultirunSummary(Callback):
    """Writes ``final.json`` per job and ``summary.csv`` per multirun.

    Args:
        exclude_keys: override keys that do not make a different config (jobs differing only there are
            averaged), e.g. ``[seed]``.
        filename: name of the summary file in the sweep dir.
    """

    def __init__(self, exclude_keys: Sequence[str] = ("seed",), filename: str = "summary.csv") -> None:
        self.exclude_keys = tuple(exclude_keys)
        self.filename = filename

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # W&B reads the group of every run from the environment: the jobs of one multirun form one group.
        os.environ.setdefault("WANDB_RUN_GROUP", Path(str(config.hydra.sweep.dir)).name)

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        status = job_return.status
        value = job_return.return_value if status == JobStatus.COMPLETED else None
        write_final(
            Path(str(config.hydra.runtime.output_dir)),
            list(job_return.overrides or []),
            status.name,
            float(value) if isinstance(value, int | float) else None,
        )

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        rows = summarise(sweep_dir, self.exclude_keys)
        if not rows:
            print(f"multirun summary: no final.json under {sweep_dir}")
            return
        path = write_summary(rows, sweep_dir / self.filename)
        print_summary(rows, path)
        failed = failed_jobs(sweep_dir)
        if failed:  # only a launcher that hands failed jobs back gets here (SLURM's, cardio/cluster/launcher.py)
            shown = ", ".join(f"#{name} {status}" for name, status in failed[:10])
            print(
                f"error: {len(failed)} multirun job(s) did not complete ({shown}); why: their final.json and the "
                "lines above",
                file=sys.stderr,
                flush=True,
            )
            sys.exit(1)


def failed_jobs(sweep_dir: Path) -> list[tuple[str, str]]:
    """``(job dir name, status)`` of every job under ``sweep_dir`` whose ``final.json`` is not ``COMPLETED``."""
    out = []
    for path in sorted(sweep_dir.glob("*/final.json"), key=lambda p: _job_number(p.parent.name)):
        status = str(json.loads(path.read_text()).get("status"))
        if status != "COMPLETED":
            out.append((path.parent.name, status))
    return out


def config_label(overrides: Sequence[str], exclude_keys: Sequence[str], common: Sequence[str] = ()) -> str:
    """The overrides that make a job's config, sorted, without the excluded keys (the seed) and without the
    ``common`` ones every job shares: ``agent.lr=0.001 env=Acrobot``."""
    kept = [o for o in overrides if o.lstrip("+~").partition("=")[0] not in exclude_keys and o not in common]
    return " ".join(sorted(kept)) or "(defaults)"


def summarise(sweep_dir: Path, exclude_keys: Sequence[str] = ("seed",)) -> list[dict[str, Any]]:
    """One row per config from the ``*/final.json`` files under ``sweep_dir``, in first-job order; overrides
    shared by every job are left out of the ``config`` label."""
    paths = sorted(sweep_dir.glob("*/final.json"), key=lambda p: _job_number(p.parent.name))
    records = [json.loads(p.read_text()) for p in paths]
    common = set.intersection(*(set(r["overrides"]) for r in records)) if len(records) > 1 else set()
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        groups[config_label(record["overrides"], exclude_keys, sorted(common))].append(record)
    rows = []
    for label, group in groups.items():
        values = [r["value"] for r in group if r["value"] is not None and math.isfinite(r["value"])]
        x = np.asarray(values, dtype=np.float64)
        rows.append(
            {
                "config": label,
                "n": len(values),
                "mean": float(x.mean()) if len(x) else float("nan"),
                "std": float(x.std()) if len(x) else float("nan"),
                "min": float(x.min()) if len(x) else float("nan"),
                "max": float(x.max()) if len(x) else float("nan"),
                "failed": len(group) - len(values),
                "values": " ".join(f"{v:g}" for v in values),
            }
        )
    return rows


def _job_number(name: str) -> int:
    head = name.partition("_")[0]
    return int(head) if head.isdigit() else 1 << 30


def write_summary(rows: list[dict[str, Any]], path: Path) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    return path


def print_summary(rows: list[dict[str, Any]], path: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"multirun summary: final eval over seeds ({path})")
    for name in FIELDS[:-1]:
        table.add_column(name, justify="left" if name == "config" else "right")
    for r in rows:
        table.add_row(
            r["config"], str(r["n"]), *(f"{r[k]:.4g}" for k in ("mean", "std", "min", "max")), str(r["failed"])
        )
    Console(width=max(100, max(len(r["config"]) for r in rows) + 60)).print(table)

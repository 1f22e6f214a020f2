"""Inside a SLURM job: continue where an earlier attempt of the same job stopped, and requeue before the limit.

SLURM stops a job with SIGTERM when it is preempted, cancelled or requeued (``scontrol requeue``), and sends the
``--signal`` of the job (``USR2``, ``hydra.launcher.signal_delay_s`` before the time limit) when its time is nearly
up. The runner turns either into a checkpoint at the next step boundary and stops (``checkpoint.stop_on_signal``).
Then:

* on SIGUSR1/SIGUSR2 the job requeues itself (:func:`requeue_if_signalled`: ``scontrol requeue``, at most
  :data:`MAX_REQUEUES_VAR` times), since SLURM will not;
* on SIGTERM it only exits: a preempting or requeueing SLURM puts it back in the queue itself, a cancelled job
  stays cancelled.

A requeued job starts again from the top with the same job id, the same arguments and so the same run dir (a
multirun job's dir is ``<sweep dir>/<job number>``, fixed when the multirun was submitted). :func:`requeued_run`
recognises the later attempt: the run dir holds :data:`MARKER`, written by an earlier attempt of this very job
(same id, fewer restarts than ``SLURM_RESTART_COUNT``), and a checkpoint; the run then continues with
``resume=<run dir>`` semantics (rows after the checkpoint dropped, the step budget unchanged). A dir written by
any other job or run is never resumed by accident.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

MARKER = "slurm_job.json"
"""File in the run dir naming the SLURM job that trains there and each of its attempts."""

MAX_REQUEUES_VAR = "CARDIO_SLURM_MAX_REQUEUES"
"""Set by cardio's launchers for their jobs: how many times a job may requeue itself on the time-limit signal
(``hydra.launcher.max_num_timeout``); a job started some other way never requeues itself."""

TIME_LIMIT_SIGNALS = (signal.SIGUSR1, signal.SIGUSR2)
"""The ``--signal`` SLURM sends ahead of the time limit (submitit asks for USR2)."""


@dataclass(frozen=True)
class ThisJob:
    """The SLURM job this process runs in."""

    job_id: str
    """``<array job id>_<task>`` for a task of an array, else the job id: how submitit and ``squeue`` name it."""
    own_id: str
    """``SLURM_JOB_ID``: the task's own job id, what ``scontrol requeue`` takes for any job (an array of one task
    is known as ``<array job id>`` alone, and ``scontrol requeue <id>_0`` is refused as an invalid job id)."""
    restarts: int
    """``SLURM_RESTART_COUNT``: 0 for the first attempt, 1 after the first requeue..."""
    node: str


def this_job(env: Mapping[str, str] | None = None) -> ThisJob | None:
    """The SLURM job of this process from its environment (``None`` outside SLURM)."""
    env = os.environ if env is None else env
    own_id = env.get("SLURM_JOB_ID")
    if not own_id:
        return None
    array, task = env.get("SLURM_ARRAY_JOB_ID"), env.get("SLURM_ARRAY_TASK_ID")
    job_id = f"{array}_{task}" if array and task else own_id
    restarts = env.get("SLURM_RESTART_COUNT", "0")
    node = env.get("SLURMD_NODENAME") or socket.gethostname()
    return ThisJob(job_id, own_id, int(restarts) if restarts.isdigit() else 0, node)


def has_checkpoint(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds something to resume: ``last.ckpt``, or every ``seed_<s>/last.ckpt`` of a
    ``seeds=[...]`` run."""
    seeds = list(run_dir.glob("seed_*"))
    if (run_dir / "last.ckpt").is_file():
        return True
    return bool(seeds) and all((s / "last.ckpt").is_file() for s in seeds)


def read_marker(run_dir: Path) -> dict:
    try:
        record = json.loads((run_dir / MARKER).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def requeued_run(run_dir: Path, job: ThisJob | None = None) -> Path | None:
    """``run_dir`` when this process is a later attempt of the SLURM job that trained there and left a checkpoint
    (see the module docstring); else ``None`` (a fresh run: also an attempt that died before its first
    checkpoint, which then starts over and overwrites its partial files)."""
    job = this_job() if job is None else job
    if job is None or job.restarts == 0:
        return None
    record = read_marker(run_dir)
    earlier = [int(a.get("restarts", 0)) for a in record.get("attempts", [])]
    if record.get("job_id") != job.job_id or not earlier or max(earlier) >= job.restarts:
        return None
    return run_dir if has_checkpoint(run_dir) else None


def record_attempt(run_dir: Path, job: ThisJob | None = None) -> None:
    """Add this attempt to ``run_dir/slurm_job.json`` (nothing outside SLURM); written whole, then renamed."""
    job = this_job() if job is None else job
    if job is None:
        return
    record = read_marker(run_dir)
    if record.get("job_id") != job.job_id:
        record = {"job_id": job.job_id, "attempts": []}
    record["attempts"].append(
        {"restarts": job.restarts, "node": job.node, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / f".{MARKER}.tmp"
    tmp.write_text(json.dumps(record, indent=1))
    os.replace(tmp, run_dir / MARKER)


def requeue_if_signalled(exit_code: int, how: str) -> str | None:
    """After a run stopped on a signal (``exit_code`` = 128 + signal): when it was SLURM's time-limit signal and
    this job was started by cardio's launcher, ``scontrol requeue`` it; one line saying what happened, for the log.

    Args:
        exit_code: the run's exit code (``checkpoint.Interrupted.exit_code``).
        how: how a person continues the work when the job is not requeued (``resume=<run dir> continues it``).
    """
    job, limit = this_job(), os.environ.get(MAX_REQUEUES_VAR, "")
    if job is None or exit_code - 128 not in [int(s) for s in TIME_LIMIT_SIGNALS] or not limit.isdigit():
        return None
    if job.restarts >= int(limit):
        return f"SLURM job {job.job_id} reached hydra.launcher.max_num_timeout={limit} requeues: it stops here; {how}"
    from cardio.cluster.slurm import ClusterError, requeue

    try:
        requeue(job.own_id)
    except ClusterError as exc:  # e.g. no scontrol on the compute nodes (submitit issue 1601)
        return f"error: could not requeue SLURM job {job.job_id} ({exc}); {how}"
    return f"SLURM job {job.job_id}: time limit near, checkpoint written, requeued ({job.restarts + 1} of {limit})"

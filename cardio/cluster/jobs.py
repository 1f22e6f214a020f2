"""Waiting for submitted SLURM jobs, and saying how each one ended.

submitit writes a job's result (or the exception it raised) to a pickle beside its logs; a job that SLURM ends
without one (cancelled, killed for its memory, a node failure, an ``error:`` exit of a refused config) is found by
its state. :func:`wait` watches both: a result is collected as soon as it lands; a job in a final state with no
result after :data:`RESULT_GRACE_S` (a shared file system may show the file late) is reported on one line with its
id, state, exit code, node, the path of its log and the log's last ``error:`` line. A requeued job passes through
``PENDING`` again and is simply waited for.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cardio.cluster import slurm

RESULT_GRACE_S = 15.0
"""Seconds a job may be in a final state before its missing result counts as no result."""

MAX_POLL_S = 30.0
"""Longest pause between two looks at the queue (the first ones come every 2 s)."""


@dataclass
class Outcome:
    """How one job ended."""

    job_id: str
    state: str
    """SLURM's final state (``COMPLETED`` when a result came back)."""
    result: Any = None
    """What the job's function returned (``None`` when it returned nothing or failed)."""
    error: str | None = None
    """Why there is no result, one line: id, state, exit code, log path, the log's ``error:`` line."""
    log: Path | None = None
    """The job's stderr log (submitit's ``<id>_0_log.err``)."""

    @property
    def ok(self) -> bool:
        return self.error is None


def last_error_line(*logs: Path) -> str | None:
    """The last ``error: ...`` line (cardio's one-line refusals) or Python exception line in the logs."""
    found = None
    for log in logs:
        try:
            lines = log.read_text(errors="replace").splitlines()[-400:]
        except OSError:
            continue
        for line in lines:
            text = line.strip()
            if text.startswith("error: ") or (text.split(":")[0].endswith(("Error", "Exception")) and ": " in text):
                found = text
    return found


def describe(job: Any, info: slurm.JobInfo | None) -> Outcome:
    """The :class:`Outcome` of a job that ended without a result."""
    err, out = Path(job.paths.stderr), Path(job.paths.stdout)
    if info is None:
        what = "is no longer known to SLURM (purged after MinJobAge; no accounting to ask)"
        state = "UNKNOWN"
    else:
        state = info.state
        code = f", exit code {info.exit_code}" if info.exit_code else ""
        reason = f", {info.reason}" if info.reason and info.reason != "None" else ""
        node = f" on {info.node}" if info.node and info.node != "None assigned" else ""
        what = f"{state}{code}{reason}{node}"
    said = last_error_line(err, out)
    line = f"SLURM job {job.job_id} {what}; log: {err}" + (f"; it said: {said}" if said else "")
    return Outcome(job.job_id, state, error=line, log=err)


def collect(job: Any) -> Outcome:
    """The :class:`Outcome` of a job whose result pickle exists (its return value, or the exception it raised)."""
    err = Path(job.paths.stderr)
    try:
        return Outcome(job.job_id, "COMPLETED", result=job.results()[0], log=err)
    except Exception as exc:  # submitit's FailedJobError: the job's traceback, as text
        lines = [line for line in str(exc).splitlines() if line.strip()]
        said = last_error_line(err) or (lines[-1].strip() if lines else type(exc).__name__)
        return Outcome(job.job_id, "FAILED", error=f"SLURM job {job.job_id} raised: {said}; log: {err}", log=err)


def wait(jobs: Sequence[Any], label: str = "jobs", poll_s: float = 2.0) -> list[Outcome]:
    """Wait until every job has a result or has ended without one; their outcomes, in order.

    Prints a line whenever the jobs' states change (``SLURM array 17: 2 RUNNING, 1 PENDING``). Ctrl-C stops
    the waiting, not the jobs (they keep running on the cluster: the message says how to cancel them).

    Args:
        jobs: submitit jobs.
        label: what they are, for the progress lines (``multirun``, ``sweep workers``).
        poll_s: the first pause between looks at the queue (it grows to :data:`MAX_POLL_S`).
    """
    pending = {job.job_id: job for job in jobs}
    outcomes: dict[str, Outcome] = {}
    ended_at: dict[str, float] = {}
    shown: Counter[str] | None = None
    start = time.monotonic()
    try:
        while pending:
            for job_id, job in list(pending.items()):
                if Path(job.paths.result_pickle).exists():
                    outcomes[job_id] = collect(pending.pop(job_id))
            if not pending:
                break
            try:
                infos = slurm.job_infos(list(pending))
            except slurm.ClusterError as exc:  # the controller is busy or restarting: look again later
                print(f"SLURM did not answer ({exc}); asking again", flush=True)
                infos = None
            now = time.monotonic()
            for job_id in list(pending) if infos is not None else []:
                info = infos.get(job_id) if infos is not None else None
                if info is not None and info.state not in slurm.FINAL_STATES:
                    ended_at.pop(job_id, None)
                elif now - ended_at.setdefault(job_id, now) > RESULT_GRACE_S:
                    outcomes[job_id] = describe(pending.pop(job_id), info)
            states = Counter(
                f"{i.state} ({i.reason})" if i.state == "PENDING" and i.reason not in ("", "None") else i.state
                for i in (infos or {}).values()
            )
            if infos is not None and states != shown:
                done = len(outcomes)
                parts = [f"{n} {state}" for state, n in sorted(states.items())] + ([f"{done} done"] if done else [])
                print(f"SLURM {label} ({len(jobs)}): {', '.join(parts)}", flush=True)
                shown = states
            time.sleep(min(MAX_POLL_S, poll_s + (time.monotonic() - start) / 20))
    except KeyboardInterrupt:
        ids = " ".join(sorted({j.split("_")[0] for j in pending}))
        print(f"stopped waiting; the jobs keep running on the cluster (scancel {ids} stops them)", flush=True)
        raise
    return [outcomes[job.job_id] for job in jobs]

"""What the SLURM cluster says: partitions and their nodes, the state of jobs, requeue.

Everything goes through SLURM's own commands (``scontrol``, ``sacct``, ``sbatch``), read in their one-line
(``-o``) or parsable forms, so the answers are the cluster's, wherever this runs (a login node, a compute node).
``sacct`` needs SLURM's accounting database; without it (a test cluster, some small sites) a job's state is read
from ``scontrol show job``, which knows a job until ``MinJobAge`` seconds after it ended.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field

from cardio.errors import UserError

FINAL_STATES = frozenset(
    {
        "COMPLETED",
        "FAILED",
        "CANCELLED",
        "TIMEOUT",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "BOOT_FAIL",
        "DEADLINE",
        "PREEMPTED",
        "REVOKED",
        "SPECIAL_EXIT",
    }
)
"""Job states after which the job runs no more (a requeued job goes back to PENDING instead)."""


class ClusterError(UserError):
    """SLURM cannot be reached or refused a request; the message is SLURM's own reason, on one line."""


@dataclass(frozen=True)
class Node:
    """One node as ``scontrol show node`` describes it."""

    name: str
    cpus: int
    """``CPUTot``."""
    memory_mb: int
    """``RealMemory``, MB."""
    gpus: int
    """GPUs in its ``Gres`` (``gpu:4``, ``gpu:a100:2(S:0-1)``...)."""


@dataclass(frozen=True)
class Partition:
    """One partition as ``scontrol show partition`` describes it, with its nodes."""

    name: str
    default: bool
    state: str
    """``UP``, ``DOWN``, ``DRAIN`` or ``INACTIVE``."""
    max_time_min: float
    """``MaxTime`` in minutes (``inf``: unlimited)."""
    nodes: list[Node] = field(default_factory=list)


@dataclass(frozen=True)
class JobInfo:
    """What SLURM says about one job (or one task of an array, ``<array id>_<index>``)."""

    job_id: str
    state: str
    """``PENDING``, ``RUNNING``, ``COMPLETED``, ``FAILED``, ``CANCELLED``... (a suffix such as ``by 0`` is cut)."""
    exit_code: str = ""
    """``<code>:<signal>``, e.g. ``2:0`` (a user error), ``0:15`` (killed by SIGTERM)."""
    reason: str = ""
    """Why a pending job waits, or why a job failed (``NonZeroExitCode``, ``BeginTime``...)."""
    node: str = ""
    restarts: int = 0
    """How many times the job was requeued."""
    stdout: str = ""
    """Its ``StdOut`` file (``scontrol`` only)."""


def available() -> bool:
    """Whether SLURM's client commands are on the PATH (a login or compute node)."""
    return all(shutil.which(cmd) for cmd in ("sbatch", "scontrol", "squeue"))


def command(args: Sequence[str], timeout: float = 60.0) -> str:
    """Run one SLURM command; its stdout.

    Raises:
        ClusterError: the command is missing, times out or exits non-zero; the message is its stderr on one line.
    """
    try:
        done = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError:
        raise ClusterError(f"{args[0]}: not found on this machine's PATH; run from a SLURM login node") from None
    except subprocess.TimeoutExpired:
        raise ClusterError(f"{' '.join(args)}: no answer from SLURM in {timeout:.0f} s") from None
    if done.returncode != 0:
        said = " ".join(line.strip() for line in (done.stderr or done.stdout).splitlines() if line.strip())
        raise ClusterError(f"{' '.join(args[:3])}: {said or f'exit code {done.returncode}'}")
    return done.stdout


def fields(line: str) -> dict[str, str]:
    """``Key=value`` pairs of one ``scontrol show ... -o`` line; values may hold spaces (``OS=Linux 6.1 #1``)."""
    pairs = re.finditer(r"(?:^|\s)([A-Za-z][\w:/]*)=(.*?)(?=\s+[A-Za-z][\w:/]*=|\s*$)", line.strip())
    return {m.group(1): m.group(2).strip() for m in pairs}


def minutes(text: str) -> float:
    """A SLURM time limit in minutes: ``UNLIMITED``/``INFINITE``, ``M``, ``M:S``, ``H:M:S``, ``D-H``, ``D-H:M``,
    ``D-H:M:S``."""
    if text.upper() in ("UNLIMITED", "INFINITE", "NONE", ""):
        return float("inf")
    days, _, rest = text.rpartition("-")
    parts = [int(p) for p in rest.split(":")]
    if days:
        h, m, s = [*parts, 0, 0][:3]
    elif len(parts) == 3:
        h, m, s = parts
    else:
        h, m, s = 0, parts[0], (parts[1] if len(parts) > 1 else 0)
    return int(days or 0) * 1440 + h * 60 + m + s / 60


def gres_gpus(gres: str) -> int:
    """GPUs in a ``Gres`` string: ``gpu:4``, ``gpu:a100:2(S:0-1),gpu:v100:1`` -> 4, 3; ``(null)`` -> 0."""
    total = 0
    for item in re.split(r",(?![^()]*\))", gres):
        parts = item.split("(")[0].split(":")
        if parts[0] == "gpu" and len(parts) > 1 and parts[-1].isdigit():
            total += int(parts[-1])
    return total


def nodes() -> dict[str, Node]:
    """Every node of the cluster by name."""
    out = {}
    for line in command(["scontrol", "show", "node", "-o"]).splitlines():
        f = fields(line)
        if "NodeName" in f:
            name = f["NodeName"]
            mem, cpus = f.get("RealMemory", "0"), f.get("CPUTot", "0")
            out[name] = Node(name, int(cpus), int(mem) if mem.isdigit() else 0, gres_gpus(f.get("Gres", "")))
    return out


def expand_hostlist(text: str) -> list[str]:
    """``node[01-03,07],gpu1`` -> ``node01 node02 node03 node07 gpu1`` (``scontrol show hostnames`` does it)."""
    if text in ("", "(null)"):
        return []
    return command(["scontrol", "show", "hostnames", text]).split()


def partitions() -> dict[str, Partition]:
    """Every partition of the cluster by name, with its nodes."""
    known = nodes()
    out = {}
    for line in command(["scontrol", "show", "partition", "-o"]).splitlines():
        f = fields(line)
        if "PartitionName" not in f:
            continue
        members = [known[n] for n in expand_hostlist(f.get("Nodes", "")) if n in known]
        out[f["PartitionName"]] = Partition(
            f["PartitionName"], f.get("Default") == "YES", f.get("State", "UP"), minutes(f.get("MaxTime", "")), members
        )
    return out


def _state(text: str) -> str:
    return text.split()[0].rstrip("+") if text else "UNKNOWN"


def job_infos(job_ids: Sequence[str]) -> dict[str, JobInfo]:
    """What SLURM says about each job id (``17`` or ``17_3``); ids it no longer knows are left out.

    ``sacct`` first (it keeps finished jobs); where accounting is off, ``scontrol show job`` per id.
    """
    ids = list(dict.fromkeys(job_ids))
    if not ids:
        return {}
    try:
        text = command(["sacct", "-n", "-P", "-X", "-o", "JobID,State,ExitCode,NodeList,Reason", "-j", ",".join(ids)])
    except ClusterError:
        return _scontrol_infos(ids)
    out: dict[str, JobInfo] = {}
    for line in text.splitlines():
        job_id, state, exit_code, node, reason = (line.split("|") + [""] * 5)[:5]
        if job_id in ids:
            out[job_id] = JobInfo(job_id, _state(state), exit_code, reason, node)
    missing = [i for i in ids if i not in out]  # sacct lags right after submission
    return {**out, **(_scontrol_infos(missing) if missing else {})}


def _scontrol_infos(ids: Sequence[str]) -> dict[str, JobInfo]:
    out = {}
    for job_id in ids:
        try:
            text = command(["scontrol", "show", "job", "-o", job_id])
        except ClusterError:  # "Invalid job id specified": purged (MinJobAge) or never there
            continue
        for line in text.splitlines():
            f = fields(line)
            task = f.get("ArrayTaskId", "")
            name = f"{f.get('ArrayJobId')}_{task}" if task and task.isdigit() else f.get("JobId", "")
            if name == job_id or f.get("JobId") == job_id:
                restarts = f.get("Restarts", "0")
                out[job_id] = JobInfo(
                    job_id,
                    _state(f.get("JobState", "")),
                    f.get("ExitCode", ""),
                    f.get("Reason", ""),
                    f.get("NodeList", ""),
                    int(restarts) if restarts.isdigit() else 0,
                    f.get("StdOut", ""),
                )
    return out


def requeue(job_id: str) -> None:
    """``scontrol requeue <job id>``: back to PENDING; SLURM stops it first if it runs.

    Raises:
        ClusterError: ``scontrol`` is missing on this node or SLURM refused (the job is not requeueable).
    """
    command(["scontrol", "requeue", job_id])

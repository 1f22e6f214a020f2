"""The memory and CPUs this process may use: the tightest of what the node, its cgroup, SLURM and ``ulimit`` grant.

On a laptop that is what the machine has free. In a container or a SLURM job it is less: the job's cgroup
(``memory.max``, ``cpu.max``), SLURM's own numbers for the job (``SLURM_MEM_PER_NODE``, ``SLURM_MEM_PER_CPU``,
``SLURM_CPUS_PER_TASK``), the CPU affinity mask, or a shell's ``ulimit -v`` / ``ulimit -d``. The pre-flight checks
(:func:`cardio.preflight.check_memory`, the env-copy and worker counts) read :func:`memory_limit` and
:func:`cpu_limit`, so a buffer larger than the job may hold is refused in one line naming the limit and where it
came from, before numpy starts allocating it.

Every candidate is a :class:`Limit`: the amount still usable and a ``source`` a person can check (``SLURM_MEM_PER_NODE
=2048 (the job's --mem)``, ``cgroup /sys/fs/cgroup/job_17/memory.max``, ``ulimit -v``). Memory limits count what
is still free under them: a cgroup's limit minus its ``memory.current``, an address-space limit minus this
process's ``VmSize``, SLURM's per-job memory minus this process's resident set.
"""

from __future__ import annotations

import math
import os
import resource
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
"""Where the cgroup file systems are mounted (v2 unified, or v1 controllers below it)."""

UNLIMITED_V1 = 1 << 60
"""cgroup v1 writes "no limit" as a huge number (9223372036854771712); anything above this is no limit."""


@dataclass(frozen=True)
class Limit:
    """One bound on a resource and where it comes from."""

    value: int
    """Bytes still usable (memory) or CPUs (at least 1)."""
    source: str
    """Where the bound is set, for the error line: ``SLURM_MEM_PER_NODE=2048 (the job's --mem)``."""


def human(n: float) -> str:
    """``1536`` -> ``1.5 KB``: bytes in binary units, one decimal."""
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1024 or unit == "PB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    raise AssertionError("unreachable")


# ------------------------------------------------------------------------------------------------ memory
def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _status_kb(field: str, status: str | None = None) -> int | None:
    """A ``kB`` field of ``/proc/self/status`` (``VmSize``, ``VmRSS``, ``VmData``) in bytes."""
    text = _read(Path("/proc/self/status")) if status is None else status
    for line in (text or "").splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    return None


def meminfo_available(meminfo: str | None = None) -> Limit | None:
    """``MemAvailable`` of ``/proc/meminfo``: what the node can give a new allocation without swapping."""
    text = _read(Path("/proc/meminfo")) if meminfo is None else meminfo
    for line in (text or "").splitlines():
        if line.startswith("MemAvailable:"):
            return Limit(int(line.split()[1]) * 1024, "MemAvailable of /proc/meminfo (free on this machine)")
    try:
        return Limit(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "free pages (sysconf)")
    except (ValueError, OSError, AttributeError):
        return None


def own_cgroups(root: Path = CGROUP_ROOT, proc_cgroup: str | None = None) -> list[tuple[str, Path]]:
    """This process's cgroup folders, innermost first, with their ancestors (a parent's limit binds too):
    ``[("v2", /sys/fs/cgroup/system.slice/job_17), ("v2", /sys/fs/cgroup/system.slice), ...]``; v1 memory and
    cpu controllers are listed as ``("v1-memory", ...)`` and ``("v1-cpu", ...)``."""
    text = _read(Path("/proc/self/cgroup")) if proc_cgroup is None else proc_cgroup
    found: list[tuple[str, Path]] = []
    for line in (text or "").splitlines():
        _, controllers, rel = line.split(":", 2)
        if controllers == "":  # v2: the unified hierarchy, below /sys/fs/cgroup/unified on a hybrid set-up
            hybrid = not (root / "cgroup.controllers").exists() and (root / "unified").is_dir()
            kind, base = "v2", root / "unified" if hybrid else root
        elif "memory" in controllers.split(","):
            kind, base = "v1-memory", root / "memory"
        elif "cpu" in controllers.split(","):
            kind, base = (
                "v1-cpu",
                root / next((name for name in ("cpu,cpuacct", "cpu", "cpuacct,cpu") if (root / name).is_dir()), "cpu"),
            )
        else:
            continue
        parts = [p for p in rel.strip("/").split("/") if p]
        for depth in range(len(parts), -1, -1):
            found.append((kind, base.joinpath(*parts[:depth])))
    return found


def cgroup_memory(root: Path = CGROUP_ROOT, proc_cgroup: str | None = None) -> list[Limit]:
    """Room under every memory limit of this process's cgroups (v2 ``memory.max``, v1 ``memory.limit_in_bytes``)."""
    limits = []
    for kind, folder in own_cgroups(root, proc_cgroup):
        if kind == "v2":
            limit_file, used_file = folder / "memory.max", folder / "memory.current"
        elif kind == "v1-memory":
            limit_file, used_file = folder / "memory.limit_in_bytes", folder / "memory.usage_in_bytes"
        else:
            continue
        limit, used = _read(limit_file), _read(used_file)
        if limit is None or limit == "max" or not limit.isdigit() or int(limit) >= UNLIMITED_V1:
            continue
        room = max(int(limit) - int(used or 0), 0)
        limits.append(Limit(room, f"cgroup {limit_file} = {human(int(limit))}, {human(int(used or 0))} in use"))
    return limits


def slurm_memory(env: Mapping[str, str] | None = None, rss: int | None = None) -> Limit | None:
    """The memory SLURM gave the job: ``SLURM_MEM_PER_NODE`` (``--mem``, MB) or ``SLURM_MEM_PER_CPU`` times the
    job's CPUs on this node, less this process's resident set. SLURM enforces it only with cgroups, but a job over
    it is killed on any cluster that does, so it is the job's limit either way."""
    env = os.environ if env is None else env
    rss = (_status_kb("VmRSS") or 0) if rss is None else rss
    per_node = env.get("SLURM_MEM_PER_NODE", "")
    if per_node.isdigit() and int(per_node) > 0:
        total, source = int(per_node) * 2**20, f"SLURM_MEM_PER_NODE={per_node} (the job's --mem, MB)"
    else:
        per_cpu = env.get("SLURM_MEM_PER_CPU", "")
        cpus = env.get("SLURM_CPUS_ON_NODE", "") or env.get("SLURM_CPUS_PER_TASK", "") or "1"
        if not (per_cpu.isdigit() and int(per_cpu) > 0 and cpus.isdigit()):
            return None
        total = int(per_cpu) * int(cpus) * 2**20
        source = f"SLURM_MEM_PER_CPU={per_cpu} x {cpus} CPUs (the job's --mem-per-cpu, MB)"
    return Limit(max(total - rss, 0), f"{source}, {human(rss)} used by this process")


def rlimit_memory() -> list[Limit]:
    """Room under ``ulimit -v`` (address space: ``RLIMIT_AS`` minus ``VmSize``) and ``ulimit -d`` (data segment:
    ``RLIMIT_DATA`` minus ``VmData``); a buffer's arrays count against both."""
    limits = []
    for name, flag, field, shell in (
        ("RLIMIT_AS", resource.RLIMIT_AS, "VmSize", "ulimit -v"),
        ("RLIMIT_DATA", resource.RLIMIT_DATA, "VmData", "ulimit -d"),
    ):
        soft, _ = resource.getrlimit(flag)
        if soft == resource.RLIM_INFINITY:
            continue
        used = _status_kb(field) or 0
        limits.append(Limit(max(soft - used, 0), f"{shell} ({name}) = {human(soft)}, {human(used)} in use"))
    return limits


def memory_limits() -> list[Limit]:
    """Every memory bound that applies to this process (see the module docstring)."""
    limits = [m for m in [meminfo_available(), slurm_memory()] if m is not None]
    return limits + cgroup_memory() + rlimit_memory()


def tightest(limits: list[Limit]) -> Limit | None:
    """The smallest of ``limits`` (``None`` when there is none)."""
    return min(limits, key=lambda m: m.value) if limits else None


def memory_limit() -> Limit | None:
    """Bytes this process can still allocate: the tightest of :func:`memory_limits`."""
    return tightest(memory_limits())


# ------------------------------------------------------------------------------------------------ CPUs
def cgroup_cpus(root: Path = CGROUP_ROOT, proc_cgroup: str | None = None) -> list[Limit]:
    """CPUs every CPU quota of this process's cgroups allows: v2 ``cpu.max`` (``quota period``), v1
    ``cpu.cfs_quota_us / cpu.cfs_period_us``, rounded up."""
    limits = []
    for kind, folder in own_cgroups(root, proc_cgroup):
        if kind == "v2":
            text = _read(folder / "cpu.max")
            if not text or text.split()[0] == "max":
                continue
            quota, period, where = int(text.split()[0]), int(text.split()[1]), folder / "cpu.max"
        elif kind == "v1-cpu":
            q, p = _read(folder / "cpu.cfs_quota_us"), _read(folder / "cpu.cfs_period_us")
            if q is None or p is None or int(q) <= 0:
                continue
            quota, period, where = int(q), int(p), folder / "cpu.cfs_quota_us"
        else:
            continue
        limits.append(Limit(max(1, math.ceil(quota / period)), f"cgroup {where} ({quota} per {period} us)"))
    return limits


def slurm_cpus(env: Mapping[str, str] | None = None) -> Limit | None:
    """The CPUs SLURM gave each task: ``SLURM_CPUS_PER_TASK`` (``--cpus-per-task``), else the job's CPUs on this
    node, ``SLURM_CPUS_ON_NODE``."""
    env = os.environ if env is None else env
    for key, what in (("SLURM_CPUS_PER_TASK", "--cpus-per-task"), ("SLURM_CPUS_ON_NODE", "CPUs on this node")):
        value = env.get(key, "")
        if value.isdigit() and int(value) > 0:
            return Limit(int(value), f"{key}={value} (the job's {what})")
    return None


def cpu_limits() -> list[Limit]:
    """Every CPU bound of this process: the machine, the affinity mask, cgroup quotas, SLURM's numbers."""
    limits = [Limit(os.cpu_count() or 1, "CPUs of this machine (os.cpu_count)")]
    if hasattr(os, "sched_getaffinity"):
        limits.append(Limit(len(os.sched_getaffinity(0)), "CPU affinity of this process (taskset, cgroup cpuset)"))
    slurm = slurm_cpus()
    return limits + cgroup_cpus() + ([slurm] if slurm is not None else [])


def cpu_limit() -> Limit:
    """CPUs this process may keep busy: the tightest of :func:`cpu_limits`."""
    found = tightest(cpu_limits())
    assert found is not None  # os.cpu_count() is always there
    return found

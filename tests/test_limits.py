"""The job's memory and CPU limits (cardio/limits.py) read from real files and a real ``ulimit``: fake cgroup
trees (v2, v1, hybrid, a container's own mount) in ``tmp_path``, SLURM's variables as an env mapping, and
``RLIMIT_AS``/``RLIMIT_DATA`` set in a child process. The tightest limit wins and names where it comes from."""

from __future__ import annotations

import functools
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from cardio import limits
from cardio.limits import Limit, cgroup_cpus, cgroup_memory, human, slurm_cpus, slurm_memory, tightest
from tests.helpers import REPO, pythonpath

GiB, MiB = 2**30, 2**20


def write(root: Path, files: dict[str, str]) -> Path:
    """Files under ``root`` (``{"a/b/memory.max": "1024"}``), folders made; ``root``."""
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
    return root


# ------------------------------------------------------------------------------------------------ cgroups
def test_cgroup_v2_counts_room_under_the_job_and_every_ancestor(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {
            "cgroup.controllers": "cpu memory",
            "system.slice/memory.max": "max",  # no limit on the parent
            "system.slice/job_17/memory.max": str(2 * GiB),
            "system.slice/job_17/memory.current": str(512 * MiB),
            "system.slice/job_17/step_0/memory.max": "max",
        },
    )
    found = cgroup_memory(root, "0::/system.slice/job_17/step_0\n")
    assert [m.value for m in found] == [2 * GiB - 512 * MiB]  # the limit less what is in use
    assert str(root / "system.slice/job_17/memory.max") in found[0].source
    assert "2.0 GB" in found[0].source and "512.0 MB in use" in found[0].source

    # a parent's limit binds too: a tighter one above the job is found and is the tightest
    write(root, {"system.slice/memory.max": str(GiB), "system.slice/memory.current": "0"})
    found = cgroup_memory(root, "0::/system.slice/job_17/step_0\n")
    assert sorted(m.value for m in found) == [GiB, 2 * GiB - 512 * MiB]
    best = tightest(found)
    assert best is not None and str(root / "system.slice/memory.max") in best.source


def test_cgroup_v1_memory_and_cpu_controllers_unlimited_ancestors_skipped(tmp_path: Path) -> None:
    job = "slurm/uid_1000/job_17"
    root = write(
        tmp_path,
        {
            f"memory/{job}/memory.limit_in_bytes": str(4 * GiB),
            f"memory/{job}/memory.usage_in_bytes": str(GiB),
            "memory/memory.limit_in_bytes": "9223372036854771712",  # v1's "no limit"
            f"cpu,cpuacct/{job}/cpu.cfs_quota_us": "150000",
            f"cpu,cpuacct/{job}/cpu.cfs_period_us": "100000",
            "cpu,cpuacct/cpu.cfs_quota_us": "-1",  # no quota
            "cpu,cpuacct/cpu.cfs_period_us": "100000",
        },
    )
    proc = f"12:pids:/{job}\n4:memory:/{job}\n3:cpu,cpuacct:/{job}\n1:name=systemd:/{job}\n0::/\n"
    memory = cgroup_memory(root, proc)
    assert [m.value for m in memory] == [3 * GiB]
    assert f"memory/{job}/memory.limit_in_bytes = 4.0 GB, 1.0 GB in use" in memory[0].source
    cpus = cgroup_cpus(root, proc)
    assert [c.value for c in cpus] == [2]  # 1.5 CPUs of quota: two busy CPUs, rounded up
    assert f"cpu,cpuacct/{job}/cpu.cfs_quota_us (150000 per 100000 us)" in cpus[0].source


def test_a_containers_own_mount_is_found_through_the_ancestor_walk(tmp_path: Path) -> None:
    # Docker without a cgroup namespace: /proc/self/cgroup names the host's path, but the container sees its
    # own cgroup mounted at the controller's root, where the limit is.
    root = write(tmp_path, {"memory/memory.limit_in_bytes": str(GiB), "memory/memory.usage_in_bytes": "0"})
    found = cgroup_memory(root, "4:memory:/docker/3f2a9c\n")
    assert [m.value for m in found] == [GiB]


def test_hybrid_layout_reads_v2_below_unified(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {
            "unified/user.slice/memory.max": str(GiB),
            "unified/user.slice/memory.current": str(256 * MiB),
            "unified/user.slice/cpu.max": "250000 100000",
            "user.slice/memory.max": str(10 * GiB),  # not where a hybrid system keeps v2: must be ignored
        },
    )
    memory = cgroup_memory(root, "0::/user.slice\n")
    assert [m.value for m in memory] == [GiB - 256 * MiB] and "unified/user.slice" in memory[0].source
    assert [c.value for c in cgroup_cpus(root, "0::/user.slice\n")] == [3]


def test_no_limit_anywhere_is_no_limit(tmp_path: Path) -> None:
    root = write(tmp_path, {"cgroup.controllers": "memory", "a/memory.max": "max", "a/cpu.max": "max 100000"})
    assert cgroup_memory(root, "0::/a\n") == []
    assert cgroup_cpus(root, "0::/a\n") == []
    assert cgroup_memory(tmp_path / "missing", "0::/a\n") == []  # no cgroup file system at all


# ------------------------------------------------------------------------------------------------ SLURM
def test_slurm_mem_per_node_is_megabytes_less_this_process() -> None:
    limit = slurm_memory({"SLURM_MEM_PER_NODE": "2048"}, rss=100 * MiB)
    assert limit is not None and limit.value == 2048 * MiB - 100 * MiB
    assert limit.source.startswith("SLURM_MEM_PER_NODE=2048 (the job's --mem, MB)")
    assert "100.0 MB used by this process" in limit.source
    over = slurm_memory({"SLURM_MEM_PER_NODE": "100"}, rss=200 * MiB)
    assert over is not None and over.value == 0  # already above the grant: nothing left, never negative


def test_slurm_mem_per_cpu_times_the_cpus_on_this_node() -> None:
    env = {"SLURM_MEM_PER_CPU": "1000", "SLURM_CPUS_ON_NODE": "4", "SLURM_CPUS_PER_TASK": "2"}
    limit = slurm_memory(env, rss=0)
    assert limit is not None and limit.value == 4000 * MiB
    assert "SLURM_MEM_PER_CPU=1000 x 4 CPUs" in limit.source
    one = slurm_memory({"SLURM_MEM_PER_CPU": "1000"}, rss=0)
    assert one is not None and one.value == 1000 * MiB  # no CPU count: one CPU
    assert slurm_memory({}, rss=0) is None
    assert slurm_memory({"SLURM_MEM_PER_NODE": "0"}, rss=0) is None  # 0: the whole node, no bound given


def test_slurm_cpus_per_task_comes_before_the_cpus_on_the_node() -> None:
    limit = slurm_cpus({"SLURM_CPUS_PER_TASK": "2", "SLURM_CPUS_ON_NODE": "8"})
    assert limit == Limit(2, "SLURM_CPUS_PER_TASK=2 (the job's --cpus-per-task)")
    node = slurm_cpus({"SLURM_CPUS_ON_NODE": "8"})
    assert node is not None and node.value == 8 and node.source.startswith("SLURM_CPUS_ON_NODE=8")
    assert slurm_cpus({}) is None


# ------------------------------------------------------------------------------------------------ the tightest
def test_tightest_is_the_smallest_whatever_the_order() -> None:
    small, mid, big = Limit(1, "small"), Limit(5, "mid"), Limit(9, "big")
    for order in ([small, mid, big], [big, mid, small], [mid, small, big]):
        assert tightest(order) is small
    assert tightest([]) is None


def test_memory_limit_names_slurm_when_its_grant_is_below_the_machine_and_cgroup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the real /proc/meminfo and ulimit, a fake cgroup tree with a generous limit, SLURM's variable below both
    root = write(tmp_path, {"cgroup.controllers": "memory", "job/memory.max": str(1 << 50)})
    monkeypatch.setattr(limits, "cgroup_memory", functools.partial(cgroup_memory, root, "0::/job\n"))
    monkeypatch.delenv("SLURM_MEM_PER_CPU", raising=False)
    monkeypatch.setenv("SLURM_MEM_PER_NODE", "1024")
    every = limits.memory_limits()
    assert any("job/memory.max" in m.source for m in every)  # the cgroup is one of the candidates
    found = limits.memory_limit()
    assert found is not None and found.source.startswith("SLURM_MEM_PER_NODE=1024")
    assert found.value == min(m.value for m in every) < GiB

    # negative control: without SLURM's variable the bound comes from somewhere else, and is larger
    monkeypatch.delenv("SLURM_MEM_PER_NODE")
    other = limits.memory_limit()
    assert other is not None and "SLURM" not in other.source and other.value > found.value


def test_cpu_limit_names_slurm_cpus_per_task(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "1")
    monkeypatch.delenv("SLURM_CPUS_ON_NODE", raising=False)
    found = limits.cpu_limit()
    assert found.value == 1
    if min(os.cpu_count() or 1, len(os.sched_getaffinity(0))) > 1:  # else the machine itself ties at 1
        assert found.source == "SLURM_CPUS_PER_TASK=1 (the job's --cpus-per-task)"
    monkeypatch.delenv("SLURM_CPUS_PER_TASK")
    assert limits.cpu_limit().value == min(c.value for c in limits.cpu_limits()) >= 1


# ------------------------------------------------------------------------------------------------ ulimit
CHILD = "import json; from cardio import limits; print(json.dumps([[m.value, m.source] for m in {}]))"


def run_child(expression: str, rlimits: dict[int, int]) -> list[list]:
    """``expression`` (a list of Limits) evaluated in a child Python whose soft ``rlimits`` are set."""

    def set_limits() -> None:
        for flag, value in rlimits.items():
            resource.setrlimit(flag, (value, resource.getrlimit(flag)[1]))

    env = {**os.environ, "PYTHONPATH": pythonpath(REPO)}
    for var in ("SLURM_MEM_PER_NODE", "SLURM_MEM_PER_CPU"):
        env.pop(var, None)
    done = subprocess.run(
        [sys.executable, "-c", CHILD.format(expression)],
        preexec_fn=set_limits,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout)


@pytest.mark.skipif(
    resource.getrlimit(resource.RLIMIT_AS)[1] != resource.RLIM_INFINITY
    or resource.getrlimit(resource.RLIMIT_DATA)[1] != resource.RLIM_INFINITY,
    reason="this shell's hard ulimit is set",
)
def test_a_real_ulimit_is_a_limit_and_the_tightest_one_wins() -> None:
    rl = run_child("limits.rlimit_memory()", {resource.RLIMIT_AS: 2 * GiB, resource.RLIMIT_DATA: GiB})
    by_source = {source.split(" = ")[0]: (value, source) for value, source in rl}
    assert set(by_source) == {"ulimit -v (RLIMIT_AS)", "ulimit -d (RLIMIT_DATA)"}
    as_value, as_source = by_source["ulimit -v (RLIMIT_AS)"]
    data_value, data_source = by_source["ulimit -d (RLIMIT_DATA)"]
    assert "= 2.0 GB" in as_source and "= 1.0 GB" in data_source
    assert 0 < as_value < 2 * GiB and 0 < data_value < GiB  # what the child already uses is taken off
    (value, source), *_ = run_child("[limits.memory_limit()]", {resource.RLIMIT_AS: 2 * GiB, resource.RLIMIT_DATA: GiB})
    assert source.startswith("ulimit -d (RLIMIT_DATA)") and value < GiB
    # negative control: the same child without a ulimit has no such bound
    assert run_child("limits.rlimit_memory()", {}) == []


def test_human_sizes() -> None:
    assert [human(n) for n in (512, 1536, 3 * GiB, 5 * 2**50, 2**62)] == [
        "512 B",
        "1.5 KB",
        "3.0 GB",
        "5.0 PB",
        "4096.0 PB",
    ]

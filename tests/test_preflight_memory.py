"""A replay buffer larger than the job may hold is refused before numpy allocates it, in one line naming the key,
the limit and where the limit comes from (SLURM's grant, a real ``ulimit -v``, a cgroup's ``memory.max``); env
copies past the job's CPUs are warned about, naming the CPU limit (cardio/preflight.py on cardio/limits.py)."""

from __future__ import annotations

import functools
import os
import re
import resource
import subprocess
import sys
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from omegaconf import OmegaConf

from cardio import limits
from cardio.errors import USER_ERROR_EXIT, ConfigError, report_user_errors
from cardio.limits import Limit
from cardio.preflight import check_env_copies, check_memory
from cardio.validate import validate
from tests.conftest import compose_train
from tests.helpers import REPO, TINY, pythonpath

GiB = 2**30
CARTPOLE_OBS = gym.spaces.Box(-1, 1, (4,), np.float32)
PER_CARTPOLE_TRANSITION = 2 * 16 + 8 + 4 + 2 + 16  # obs and next obs, a Discrete action, reward, two flags, extras


def train(
    words: list[str], cwd: Path, env: dict[str, str], rlimit_as: int | None = None
) -> subprocess.CompletedProcess:
    """``scripts/train.py <words>`` as a user runs it, with ``env`` added and, optionally, a real ``ulimit -v``."""

    def set_ulimit() -> None:
        if rlimit_as is not None:
            resource.setrlimit(resource.RLIMIT_AS, (rlimit_as, resource.getrlimit(resource.RLIMIT_AS)[1]))

    full = {**os.environ, "PYTHONPATH": pythonpath(REPO), "WANDB_MODE": "disabled", **env}
    for var in ("CARDIO_TRACEBACK", "HYDRA_FULL_ERROR", "SLURM_MEM_PER_NODE", "SLURM_MEM_PER_CPU"):
        if var not in env:
            full.pop(var, None)
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / "train.py"), *words, "logger=csv"],
        cwd=cwd,
        env=full,
        preexec_fn=set_ulimit,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def refusal_line(proc: subprocess.CompletedProcess) -> str:
    """The one ``error:`` line of a run refused with exit code 2 (no traceback, no MemoryError)."""
    assert proc.returncode == USER_ERROR_EXIT, (proc.returncode, proc.stderr[-3000:])
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr and "MemoryError" not in proc.stderr
    return lines[0]


def mem_available() -> int:
    found = limits.meminfo_available()
    return found.value if found is not None else 0


# ------------------------------------------------------------------------------------------------ the entry point
def test_train_refuses_a_buffer_over_slurm_mem_per_node_in_one_line(tmp_path: Path) -> None:
    proc = train(["buffer.capacity=100000000"], tmp_path, {"SLURM_MEM_PER_NODE": "2048"})
    line = refusal_line(proc)
    assert "buffer.capacity=1e+08" in line and "SLURM_MEM_PER_NODE=2048 (the job's --mem, MB)" in line
    assert f"{PER_CARTPOLE_TRANSITION} bytes per transition" in line and "5.8 GB" in line
    assert not (tmp_path / "outputs").exists(), "a run dir was made for a refused run"


def test_slurm_mem_per_node_decides_in_process_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLURM_MEM_PER_CPU", raising=False)
    monkeypatch.setenv("SLURM_MEM_PER_NODE", "2048")
    with pytest.raises(ConfigError, match=r"SLURM_MEM_PER_NODE=2048 \(the job's --mem, MB\)"):
        validate(compose_train(["buffer.capacity=100000000"]))
    validate(compose_train(["buffer.capacity=100000"]))  # negative control: 6 MB fits the same grant


@pytest.mark.skipif(mem_available() < 6 * GiB, reason="needs the machine's free memory above the ulimit")
@pytest.mark.skipif(resource.getrlimit(resource.RLIMIT_AS)[1] != resource.RLIM_INFINITY, reason="hard ulimit set")
def test_train_refuses_a_buffer_over_a_real_ulimit_v_in_one_line(tmp_path: Path) -> None:
    proc = train(["buffer.capacity=100000000"], tmp_path, {}, rlimit_as=4 * GiB)
    line = refusal_line(proc)
    assert "buffer.capacity=1e+08" in line and "ulimit -v (RLIMIT_AS) = 4.0 GB" in line
    assert not (tmp_path / "outputs").exists()


@pytest.mark.slow
@pytest.mark.skipif(mem_available() < 6 * GiB, reason="needs the machine's free memory above the ulimit")
@pytest.mark.skipif(resource.getrlimit(resource.RLIMIT_AS)[1] != resource.RLIM_INFINITY, reason="hard ulimit set")
def test_under_the_same_limits_a_buffer_that_fits_trains(tmp_path: Path) -> None:
    # negative control of the two refusals above: the same job limits, a buffer of 100,000 transitions (6 MB)
    proc = train(
        [*TINY, "buffer.capacity=100000", f"run_dir={tmp_path / 'run'}"],
        tmp_path,
        {"SLURM_MEM_PER_NODE": "2048"},
        rlimit_as=4 * GiB,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "run" / "last.ckpt").is_file()


def test_validate_refuses_a_buffer_over_the_cgroup_memory_max_with_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "job").mkdir()
    (tmp_path / "cgroup.controllers").write_text("memory\n")
    (tmp_path / "job" / "memory.max").write_text(f"{GiB}\n")
    (tmp_path / "job" / "memory.current").write_text(f"{GiB // 4}\n")
    monkeypatch.setattr(limits, "cgroup_memory", functools.partial(limits.cgroup_memory, tmp_path, "0::/job\n"))
    for var in ("SLURM_MEM_PER_NODE", "SLURM_MEM_PER_CPU"):
        monkeypatch.delenv(var, raising=False)
    cfg = compose_train(["buffer.capacity=20000000"])  # 1.2 GB of CartPole transitions > 768 MB of room
    with pytest.raises(SystemExit) as exited, report_user_errors():
        validate(cfg)
    assert exited.value.code == USER_ERROR_EXIT
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert "buffer.capacity=2e+07" in lines[0] and "768.0 MB of memory is available" in lines[0]
    assert f"cgroup {tmp_path / 'job' / 'memory.max'} = 1.0 GB, 256.0 MB in use" in lines[0]

    # negative control: a buffer a tenth that size fits under the same cgroup
    validate(compose_train(["buffer.capacity=2000000"]))


# ------------------------------------------------------------------------------------------------ the message
def test_the_largest_size_the_refusal_suggests_fits_and_one_more_does_not() -> None:
    plain = OmegaConf.to_container(compose_train(["buffer.capacity=100000000"]), resolve=False)
    limit = Limit(10**6, "SLURM_MEM_PER_NODE=1 (test)")
    with pytest.raises(ConfigError) as info:
        check_memory(plain, CARTPOLE_OBS, gym.spaces.Discrete(2), limit)  # type: ignore[arg-type]
    message = str(info.value)
    assert "(SLURM_MEM_PER_NODE=1 (test))" in message and "or set buffer.memory_saving=true" in message
    suggested = int(re.search(r"at most about ([\d,]+) transitions", message).group(1).replace(",", ""))  # type: ignore[union-attr]
    plain["buffer"]["capacity"] = suggested  # type: ignore[index]
    assert check_memory(plain, CARTPOLE_OBS, gym.spaces.Discrete(2), limit) <= limit.value  # type: ignore[arg-type]
    plain["buffer"]["capacity"] = suggested + 1  # type: ignore[index]
    with pytest.raises(ConfigError):
        check_memory(plain, CARTPOLE_OBS, gym.spaces.Discrete(2), limit)  # type: ignore[arg-type]


def test_an_on_policy_rollout_over_the_limit_names_n_steps() -> None:
    plain = OmegaConf.to_container(compose_train(["agent=ppo", "runner.schedule.n_steps=1000000"]), resolve=False)
    with pytest.raises(ConfigError) as info:
        check_memory(plain, CARTPOLE_OBS, gym.spaces.Discrete(2), Limit(2**26, "ulimit -v (RLIMIT_AS) = 64.0 MB"))  # type: ignore[arg-type]
    message = str(info.value)
    assert message.startswith("runner.schedule.n_steps=1e+06:") and "(ulimit -v (RLIMIT_AS) = 64.0 MB)" in message
    assert "lower runner.schedule.n_steps" in message and "memory_saving" not in message


# ------------------------------------------------------------------------------------------------ env copies vs CPUs
def test_more_async_env_processes_than_cpus_warns_naming_the_cpu_limit() -> None:
    cpus = Limit(2, "SLURM_CPUS_PER_TASK=2 (the job's --cpus-per-task)")
    with pytest.warns(UserWarning) as caught:
        check_env_copies({"vectorization": "async", "num_envs": 8}, cpus)
    message = str(caught[0].message)
    assert "env.num_envs=8 async env processes on 2 CPU(s) (SLURM_CPUS_PER_TASK=2" in message
    assert "env.num_envs=2 or env.vectorization=sync" in message
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # negative controls: as many as the CPUs, or copies in this process
        check_env_copies({"vectorization": "async", "num_envs": 2}, cpus)
        check_env_copies({"vectorization": "sync", "num_envs": 8}, cpus)


def test_env_copies_read_slurm_cpus_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "1")
    with pytest.warns(UserWarning, match=r"env.num_envs=4 async env processes on 1 CPU\(s\)"):
        check_env_copies({"vectorization": "async", "num_envs": 4})
    with pytest.warns(UserWarning, match="async env processes"):
        validate(compose_train(["env.vectorization=async", "env.num_envs=4"]), check_env=False)

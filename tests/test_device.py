"""``device=cpu|cuda|auto`` (cardio/device.py): ``auto`` takes a GPU only where the agent's framework sees one,
``cuda`` without one is refused in one line naming the key and what there is, and a JAX agent asks JAX."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from cardio import device
from cardio.device import is_jax_agent, resolve_device
from cardio.errors import USER_ERROR_EXIT, ConfigError
from cardio.validate import validate
from tests.conftest import compose_train
from tests.helpers import REPO, pythonpath

TORCH_DQN = "cardio.agents.dqn.DQNConfig"
JAX_DQN = "cardio.agents.jax.dqn.DQNJaxConfig"


def gpus(monkeypatch: pytest.MonkeyPatch, torch_count: int, jax_count: int = 0) -> None:
    """What each framework sees, as on a machine with that many GPUs."""
    monkeypatch.setattr(device, "torch_gpus", lambda: torch_count)
    monkeypatch.setattr(device, "jax_gpus", lambda: jax_count)


@pytest.mark.parametrize(("count", "expected"), [(0, "cpu"), (1, "cuda"), (4, "cuda")])
def test_auto_takes_a_gpu_only_where_there_is_one(monkeypatch: pytest.MonkeyPatch, count: int, expected: str) -> None:
    gpus(monkeypatch, count)
    assert resolve_device("auto", TORCH_DQN) == expected


def test_auto_on_this_machine_is_what_torch_sees() -> None:
    assert resolve_device("auto", TORCH_DQN) == ("cuda" if torch.cuda.is_available() else "cpu")


def test_cuda_without_a_gpu_is_one_clear_refusal(monkeypatch: pytest.MonkeyPatch) -> None:
    gpus(monkeypatch, 0, jax_count=2)  # JAX's GPUs do not count for a torch agent
    with pytest.raises(ConfigError) as info:
        resolve_device("cuda", TORCH_DQN)
    message = str(info.value)
    assert message.startswith("device='cuda': torch sees no CUDA GPU")
    assert "use device=cpu, or device=auto" in message and "CUDA torch build" in message
    gpus(monkeypatch, 1)  # negative control: with one GPU the same request stands
    assert resolve_device("cuda", TORCH_DQN) == "cuda"


def test_a_jax_agent_asks_jax_not_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    gpus(monkeypatch, torch_count=2, jax_count=0)
    with pytest.raises(ConfigError, match=r"device='cuda': JAX sees no CUDA GPU.*cardio-template\[jax-cuda\]"):
        resolve_device("cuda", JAX_DQN)
    assert resolve_device("auto", JAX_DQN) == "cpu"
    gpus(monkeypatch, torch_count=0, jax_count=1)
    assert resolve_device("auto", JAX_DQN) == "cuda"
    assert resolve_device("auto", TORCH_DQN) == "cpu"


def test_a_gpu_index_must_be_one_there_is(monkeypatch: pytest.MonkeyPatch) -> None:
    gpus(monkeypatch, 2)
    assert resolve_device("cuda:1", TORCH_DQN) == "cuda:1"
    with pytest.raises(ConfigError, match=r"device='cuda:2': torch sees 2 GPU\(s\), cuda:0 to cuda:1"):
        resolve_device("cuda:2", TORCH_DQN)


@pytest.mark.parametrize("name", ["gpu", "CPU", "cuda:x", "auto:0", "cuda:", "mps", ""])
def test_a_device_name_that_is_none_of_them_is_refused(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    gpus(monkeypatch, 2)
    with pytest.raises(ConfigError) as info:
        resolve_device(name, TORCH_DQN)
    assert str(info.value) == f"device={name!r}: expected cpu, cuda, cuda:<index> (cuda:1) or auto"


def test_cpu_asks_no_framework_and_pins_jax_to_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    def asked() -> int:
        raise AssertionError("device=cpu asked a framework for GPUs")

    monkeypatch.setattr(device, "torch_gpus", asked)
    monkeypatch.setattr(device, "jax_gpus", asked)
    monkeypatch.delitem(sys.modules, "jax", raising=False)  # as before JAX starts
    monkeypatch.delenv("JAX_PLATFORMS", raising=False)
    assert resolve_device("cpu", TORCH_DQN) == "cpu" and "JAX_PLATFORMS" not in os.environ
    assert resolve_device("cpu", JAX_DQN) == "cpu" and os.environ["JAX_PLATFORMS"] == "cpu"
    monkeypatch.setenv("JAX_PLATFORMS", "cuda")  # a user's own choice is left alone
    resolve_device("cpu", JAX_DQN)
    assert os.environ["JAX_PLATFORMS"] == "cuda"


def test_every_shipped_agent_is_asked_about_the_right_framework() -> None:
    targets = {}
    for path in sorted((REPO / "configs" / "agent").glob("*.yaml")):
        node = yaml.safe_load(path.read_text())
        target = node.get("_target_") or (node.get("agent") or {}).get("_target_")
        if target is not None:
            targets[path.stem] = target
    assert len(targets) >= 10, targets
    for name, target in targets.items():
        assert is_jax_agent(target) == name.endswith("_jax"), (name, target)
    assert is_jax_agent("my_pkg.jax_agents.MyConfig") and not is_jax_agent("my_pkg.agents.MyConfig")


def test_validate_writes_the_resolved_device_into_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    gpus(monkeypatch, 0)
    assert validate(compose_train(["device=auto"]), check_env=False).device == "cpu"
    gpus(monkeypatch, 1)
    assert validate(compose_train(["device=auto"]), check_env=False).device == "cuda"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_train_with_device_cuda_and_no_gpu_is_one_line_and_exit_2(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": pythonpath(REPO), "WANDB_MODE": "disabled"}
    env.pop("CARDIO_TRACEBACK", None)
    env.pop("HYDRA_FULL_ERROR", None)
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "train.py"), "device=cuda", "logger=csv"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == USER_ERROR_EXIT, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: device='cuda': torch sees no CUDA GPU"), lines
    assert not (tmp_path / "outputs").exists()

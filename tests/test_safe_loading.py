"""Weights-only agent files: round trips, clear refusals, and evaluation that never unpickles a stranger's file."""

from __future__ import annotations

import pickle
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from omegaconf import open_dict

from cardio import weights
from cardio.agents import DQNConfig
from cardio.agents.a2c import A2CConfig
from cardio.agents.drqn import DRQNConfig
from cardio.agents.ppo import PPOConfig
from cardio.agents.sac import SACConfig
from cardio.agents.td3 import TD3Config
from cardio.build import build_runner, load_agent, save_config
from tests.conftest import compose_train, shrink

BOX3 = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
TWO = gym.spaces.Discrete(2)
AGENTS = {
    "DQN": (DQNConfig(hidden_sizes=(8,)), TWO),
    "DRQN": (DRQNConfig(hidden_sizes=(8,), gru_size=4), TWO),
    "SAC": (SACConfig(hidden_sizes=(8,)), BOX3),
    "TD3": (TD3Config(hidden_sizes=(8,)), BOX3),
    "PPO": (PPOConfig(hidden_sizes=(8,)), BOX3),
    "A2C": (A2CConfig(hidden_sizes=(8,)), TWO),
}


def same(a, b, path: str = "") -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            same(a[k], b[k], f"{path}/{k}")
    elif isinstance(a, list | tuple):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            same(x, y, f"{path}/{i}")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), path
    else:
        assert a == b, path


@pytest.mark.parametrize("name", AGENTS)
def test_weights_round_trip_into_a_fresh_agent(name: str, tmp_path: Path) -> None:
    config, action_space = AGENTS[name]
    torch.manual_seed(0)
    trained = config.build(BOX3, action_space, seed=1)
    for p in trained.state_dict().values():  # move every network away from a fresh one's initialisation
        if isinstance(p, dict):
            for v in p.values():
                if isinstance(v, torch.Tensor) and v.is_floating_point():
                    v.add_(0.5)
    weights.save_weights(trained, tmp_path / "w.npz", meta={"env_steps": 1234})
    torch.manual_seed(1)
    fresh = config.build(BOX3, action_space, seed=2)
    weights.load_weights(fresh, tmp_path / "w.npz")
    same(trained.state_dict(), fresh.state_dict())  # networks, counters and the agent's generator
    assert weights.weights_meta(tmp_path / "w.npz") == {"env_steps": 1234}


def test_weights_that_do_not_fit_name_the_key(tmp_path: Path) -> None:
    weights.save_weights(DQNConfig(hidden_sizes=(8,)).build(BOX3, TWO), tmp_path / "small.npz")
    with pytest.raises(
        weights.WeightsError, match=r"'q_net/0.layers.0.weight' is float32\[8, 3\], this agent has float32\[16, 3\]"
    ):
        weights.load_weights(DQNConfig(hidden_sizes=(16,)).build(BOX3, TWO), tmp_path / "small.npz")
    with pytest.raises(weights.WeightsError, match=r"lacks 'actor/torso.layers.0.weight'"):
        weights.load_weights(SACConfig(hidden_sizes=(8,)).build(BOX3, BOX3), tmp_path / "small.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(weights.WeightsError, match="not a plain weights file"):
        weights.load_weights(DQNConfig().build(BOX3, TWO), tmp_path / "junk.npz")


# ------------------------------------------------------------------------------------------ malicious files
class Planted:
    """Unpickling this creates a file: the stand-in for any code hidden in a pickle."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.touch, (self.marker,))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real run dir: config.yaml, last.ckpt and weights.npz written by the runner."""
    path = tmp_path_factory.mktemp("run")
    cfg = shrink(compose_train(["~zoo", "agent.hidden_sizes=[8]"]), path, total_steps=128)
    with open_dict(cfg):
        cfg.runner.checkpoint_dir = str(path)
    save_config(cfg, path)
    build_runner(cfg).run()
    assert (path / "last.ckpt").is_file() and (path / weights.WEIGHTS_NAME).is_file()
    return path


def test_evaluation_reads_weights_npz_and_never_the_pickle(run_dir: Path, tmp_path: Path) -> None:
    from scripts.evaluate import main as evaluate

    marker = tmp_path / "pwned"
    (run_dir / "last.ckpt").write_bytes(pickle.dumps(Planted(marker)))  # someone swapped the checkpoint
    metrics = evaluate([f"run={run_dir}", "episodes=2"])
    assert np.isfinite(metrics["eval/mean_reward"]) and not marker.exists()
    with pytest.raises(SystemExit):  # asking for the pickle without trust_pickle is refused
        evaluate([f"run={run_dir}", "episodes=2", f"checkpoint={run_dir / 'last.ckpt'}"])
    assert not marker.exists()
    # negative control: the planted file is live; unpickling it does run its code
    pickle.loads((run_dir / "last.ckpt").read_bytes())
    assert marker.exists()


@pytest.mark.parametrize("plant", ["pickle_file", "object_array_in_npz"])
def test_a_malicious_weights_file_is_refused_without_running_it(
    plant: str, run_dir: Path, tmp_path: Path, capsys
) -> None:
    from scripts.evaluate import main as evaluate

    marker = tmp_path / "pwned"
    planted = tmp_path / "weights.npz"
    if plant == "pickle_file":
        planted.write_bytes(pickle.dumps(Planted(marker)))
    else:  # a well-formed .npz whose one array holds a pickled object
        arrays = weights.read_weights(run_dir / weights.WEIGHTS_NAME)
        arrays["q_net/0.layers.0.weight"] = np.array([Planted(marker)], dtype=object)
        np.savez(planted, **arrays)
    with pytest.raises(SystemExit) as exc:
        evaluate([f"run={run_dir}", "episodes=1", f"weights={planted}"])
    assert exc.value.code == 2 and not marker.exists()
    assert "refused without unpickling" in capsys.readouterr().err
    # negative control: numpy's own default would have run it
    with np.load(planted, allow_pickle=True) if plant != "pickle_file" else open(planted, "rb") as f:
        _ = f["q_net/0.layers.0.weight"] if plant != "pickle_file" else pickle.load(f)
    assert marker.exists()


def test_load_agent_builds_the_run_agent_from_config_and_weights(run_dir: Path) -> None:
    agent = load_agent(run_dir)
    saved = weights.read_weights(run_dir / weights.WEIGHTS_NAME)
    np.testing.assert_array_equal(agent.q_net[0].layers[0].weight.detach().numpy(), saved["q_net/0.layers.0.weight"])
    action, _ = agent.act(np.zeros((3, 4), np.float32), explore=False)
    assert action.shape == (3,)
    with pytest.raises(weights.WeightsError, match=r"has no config\.yaml"):
        load_agent(run_dir / "nowhere")

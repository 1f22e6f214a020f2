"""Dict and Tuple observations, nested too, end to end: the multi-input torso, then DQN, PPO and SAC trained,
checkpointed, resumed and evaluated on ``cardio/NestedDict-v0`` (cardio/envs/nested.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from omegaconf import open_dict

from cardio.agents.networks import FlatEncoder, MultiInputTorso, NatureCNN, leaf_spaces, make_torso, obs_to_tensor
from cardio.build import build_runner
from cardio.envs import NestedDictEnv
from cardio.pytree import named_leaves, tree_stack
from tests.conftest import compose_train, shrink

ROOT = Path(__file__).resolve().parents[1]
SPACE = NestedDictEnv().observation_space


def batch(n: int = 5, seed: int = 0) -> dict:
    SPACE.seed(seed)
    return tree_stack([SPACE.sample() for _ in range(n)])


# ------------------------------------------------------------------------------------------------ torso
def test_leaf_names_and_order_match_the_observation_tree() -> None:
    """The torso finds each leaf by the name the pytree helpers give it, Tuple positions included."""
    assert list(leaf_spaces(SPACE)) == list(named_leaves(SPACE.sample()))
    assert list(leaf_spaces(SPACE)) == [
        "camera", "sensors/extras/0", "sensors/extras/1", "sensors/goal", "sensors/position"
    ]  # fmt: skip


def test_multi_input_torso_has_one_encoder_per_leaf() -> None:
    torso = make_torso(SPACE, hidden_sizes=(32,))
    assert isinstance(torso, MultiInputTorso)
    kinds = dict(zip(torso.names, map(type, torso.encoders), strict=True))
    assert kinds["camera"] is NatureCNN and all(kinds[n] is FlatEncoder for n in torso.names[1:])
    # CNN 256 + step one-hot 9 + noise 2 + goal one-hot 3 + position 1, before the 32-wide layer
    assert torso.layers[0].in_features == 256 + 9 + 2 + 3 + 1 and torso.features_dim == 32
    assert torso(obs_to_tensor(batch(), "cpu")).shape == (5, 32)


def test_multi_input_torso_reads_every_key() -> None:
    """Changing any one leaf of the observation changes the features: no key is dropped."""
    torso = make_torso(SPACE, hidden_sizes=())
    base = batch(2, seed=1)
    features = torso(obs_to_tensor(base, "cpu"))
    for name in leaf_spaces(SPACE):
        other = batch(2, seed=2)
        changed = {k: v.copy() for k, v in named_leaves(base).items()}
        changed[name] = named_leaves(other)[name]
        if np.array_equal(changed[name], named_leaves(base)[name]):
            changed[name] = (changed[name] + 1) % 2  # the draws happened to agree: force a difference
        tree = {
            "camera": changed["camera"],
            "sensors": {
                "extras": (changed["sensors/extras/0"], changed["sensors/extras/1"]),
                "goal": changed["sensors/goal"],
                "position": changed["sensors/position"],
            },
        }
        assert not torch.allclose(torso(obs_to_tensor(tree, "cpu")), features), name


def test_nature_cnn_reads_channel_last_images_as_channel_first() -> None:
    """``[H, W, C]`` images are permuted, not reinterpreted: the same weights give the same features."""
    hwc, chw = gym.spaces.Box(0, 255, (40, 36, 3), np.uint8), gym.spaces.Box(0, 255, (3, 40, 36), np.uint8)
    cnn_hwc, cnn_chw = NatureCNN(hwc), NatureCNN(chw)
    cnn_chw.load_state_dict(cnn_hwc.state_dict())
    x = torch.randint(0, 256, (2, 40, 36, 3), dtype=torch.uint8)
    assert torch.allclose(cnn_hwc(x), cnn_chw(x.permute(0, 3, 1, 2)))
    assert not torch.allclose(cnn_hwc(x), cnn_chw(x.reshape(2, 3, 40, 36)))  # negative control: a plain reshape


def test_small_uint8_arrays_are_flattened_not_convolved() -> None:
    assert not isinstance(make_torso(gym.spaces.Box(0, 255, (8, 8, 3), np.uint8), (16,)), NatureCNN)


# ------------------------------------------------------------------------------------------------ agents
AGENTS = {
    "dqn": ["agent=dqn", "agent.target_update_interval=200", "agent.lr=1e-3"],
    "ppo": ["agent=ppo", "runner.schedule.n_steps=32", "agent.batch_size=32", "agent.n_epochs=4"],
    "sac": ["agent=sac", "env.kwargs.continuous=true", "agent.hidden_sizes=[64,64]"],
}


def nested_runner(agent: str, run_dir: Path, total_steps: int):
    cfg = compose_train(["env=NestedDict", "env.num_envs=2", *AGENTS[agent]])
    cfg = shrink(cfg, run_dir, total_steps)
    with open_dict(cfg):
        if agent != "ppo":
            cfg.runner.schedule.learning_starts = 64
            cfg.runner.schedule.batch_size = 32
            cfg.buffer.capacity = 2_000
    return build_runner(cfg)


@pytest.mark.parametrize("agent", sorted(AGENTS))
def test_agent_trains_checkpoints_resumes_and_evaluates_on_nested_dict(agent: str, tmp_path: Path) -> None:
    runner = nested_runner(agent, tmp_path / "a", 128)
    runner.run()
    assert runner.updates > 0
    ckpt = runner.save(tmp_path / "a" / "last.ckpt")
    fresh = nested_runner(agent, tmp_path / "b", 128)
    fresh.load(ckpt)
    for name, param in runner.agent.state_dict().items():
        if isinstance(param, dict) and all(isinstance(v, torch.Tensor) for v in param.values()):
            for key, value in param.items():
                torch.testing.assert_close(fresh.agent.state_dict()[name][key], value, msg=f"{name}.{key}")
    # the resumed runner continues where the first stopped, with the Dict replay/rollout buffer restored
    assert fresh.env_steps == 128 and fresh.buffer.size.sum() == runner.buffer.size.sum()
    fresh.run(total_steps=192)
    assert fresh.env_steps >= 192 and fresh.updates > runner.updates
    metrics = fresh.evaluate(4)
    assert np.isfinite(metrics["eval/mean_reward"]) and metrics["eval/mean_ep_length"] == 8


def test_dqn_learns_the_goal_from_a_nested_dict(tmp_path: Path) -> None:
    """The goal is in the observation, so a greedy DQN that reads the Dict scores 8 of 8; uniform play scores
    8/3 (negative control: the same agent before training)."""
    runner = nested_runner("dqn", tmp_path, 512)
    before = runner.evaluate(10)["eval/mean_reward"]
    after = runner.run()["eval/mean_reward"]
    assert before < 5.0 <= 7.0 <= after, (before, after)


def test_train_resume_and_evaluate_commands_on_nested_dict(tmp_path: Path) -> None:
    """The real commands: train PPO on the nested Dict env, resume it for longer, evaluate the run dir."""
    run_dir = tmp_path / "run"
    common = ["env=NestedDict", *AGENTS["ppo"], "logger=csv", "runner.eval_freq=0", "runner.eval_episodes=2"]
    train = [sys.executable, str(ROOT / "scripts" / "train.py"), *common, f"hydra.run.dir={run_dir}"]
    subprocess.run([*train, "runner.total_steps=64"], check=True, cwd=tmp_path, capture_output=True, timeout=120)
    resumed = subprocess.run(
        [*train, "runner.total_steps=128", f"resume={run_dir}"], cwd=tmp_path, capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming from" in resumed.stdout
    evaluate = [sys.executable, str(ROOT / "scripts" / "evaluate.py"), f"run={run_dir}", "episodes=3"]
    evaluate += [f"checkpoint={run_dir / 'last.ckpt'}", "trust_pickle=true"]  # resume state: trusted
    subprocess.run(evaluate, check=True, cwd=tmp_path, capture_output=True, timeout=120)
    result = json.loads((run_dir / "eval.json").read_text())
    assert result["env_steps"] == 128 and result["eval/mean_ep_length"] == 8.0

"""Runner.reset() and step-driven schedules: everything counted in env steps restarts with the counter."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from cardio.agents import DQNConfig
from cardio.agents.drqn import DRQNConfig
from cardio.agents.ppo import PPOConfig
from cardio.buffers.prioritized import PrioritizedBuffer

BOX4 = gym.spaces.Box(-1.0, 1.0, shape=(4,), dtype=np.float32)
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "reptile.py"


def nudge(net: torch.nn.Module) -> None:
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)


def synced(agent) -> bool:
    return all(torch.equal(a, b) for a, b in zip(agent.q_net.parameters(), agent.target_net.parameters(), strict=True))


@pytest.mark.parametrize("config", [DQNConfig(target_update_interval=100), DRQNConfig(target_update_interval=100)])
def test_target_syncs_restart_when_the_step_counter_goes_back(config) -> None:
    agent = config.build(BOX4, gym.spaces.Discrete(2))
    for step in range(0, 1000, 4):  # a first run of 1000 env steps: 9 syncs
        agent.on_progress(step, 1000)
    nudge(agent.q_net)
    for step in range(0, 100, 4):  # Runner.reset(): the counter starts again at 0
        agent.on_progress(step, 1000)
        assert not synced(agent), f"synced early at env step {step}"
    agent.on_progress(100, 1000)
    assert synced(agent), "no target sync at env step 100 of the second run"
    assert agent.epsilon == pytest.approx(1.0 + 100 / (config.exploration_fraction * 1000) * (0.05 - 1.0))


def test_schedules_that_are_functions_of_env_steps_restart_too() -> None:
    ppo = PPOConfig(lr_schedule="linear").build(BOX4, gym.spaces.Discrete(2))
    ppo.on_progress(900, 1000)
    ppo.on_progress(0, 1000)
    assert ppo.progress_remaining == 1.0
    per = PrioritizedBuffer(64, beta=0.4)
    per.on_progress(1000, 1000)
    per.on_progress(0, 1000)
    assert per.beta == pytest.approx(0.4)


def test_reptile_example_syncs_the_target_network_after_every_reset() -> None:
    spec = importlib.util.spec_from_file_location("reptile_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    reptile = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reptile)
    records = reptile.main(iterations=3, inner_steps=400, step_size=0.5, seed=0)
    assert [r["target_synced"] for r in records] == [1.0, 1.0, 1.0]


def test_reset_restarts_per_episode_exploration_noise() -> None:
    from cardio import CircularBuffer, OffPolicySchedule, Runner
    from cardio.agents.td3 import TD3Config
    from cardio.envs import make_env

    env = make_env("Pendulum-v1", num_envs=2, seed=0)
    agent = TD3Config(hidden_sizes=(8,), noise_type="ou").build(env.single_observation_space, env.single_action_space)
    schedule = OffPolicySchedule(learning_starts=1000, train_freq=4, batch_size=8)
    runner = Runner(env, agent, CircularBuffer(1000, num_envs=2), schedule, total_steps=40, seed=0)
    runner.run()  # random warm-up actions; the OU process is driven by act() only
    agent.act(np.zeros((2, 3), np.float32), explore=True)
    assert np.abs(agent.noise.x).min() > 0
    runner.reset()
    np.testing.assert_array_equal(agent.noise.x, 0.0)  # every env starts a new episode

"""DQN behaviour: random tie-breaking, space checks, and bootstrapping on termination only."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from cardio.agents import DQNConfig, SpaceError
from cardio.agents.networks import argmax_random_ties

BOX4 = gym.spaces.Box(-1.0, 1.0, shape=(4,), dtype=np.float32)


def zeroed_dqn(num_actions: int = 3, seed: int = 0):
    agent = DQNConfig().build(BOX4, gym.spaces.Discrete(num_actions), seed=seed)
    with torch.no_grad():
        for p in agent.q_net.parameters():
            p.zero_()  # every Q-value is 0: all actions tie
    return agent


def test_greedy_actions_break_ties_uniformly() -> None:
    agent = zeroed_dqn(3)
    actions, _ = agent.act(np.zeros((30_000, 4), np.float32), explore=False)
    freq = np.bincount(actions, minlength=3) / len(actions)
    np.testing.assert_allclose(freq, 1 / 3, atol=0.015)
    # negative control: numpy's argmax would always pick action 0
    assert np.bincount(np.argmax(np.zeros((100, 3)), axis=1), minlength=3)[0] == 100


def test_argmax_random_ties_only_chooses_among_maxima() -> None:
    values = np.array([[1.0, 3.0, 3.0, 0.0]] * 5000)
    picks = argmax_random_ties(values, np.random.default_rng(0))
    assert set(picks) == {1, 2}
    assert abs(np.mean(picks == 1) - 0.5) < 0.03


def test_epsilon_decays_linearly_then_stays() -> None:
    agent = DQNConfig(exploration_fraction=0.5, exploration_final_eps=0.1).build(BOX4, gym.spaces.Discrete(2))
    agent.on_progress(0, 1000)
    assert agent.epsilon == pytest.approx(1.0)
    agent.on_progress(250, 1000)
    assert agent.epsilon == pytest.approx(0.55)
    agent.on_progress(900, 1000)
    assert agent.epsilon == pytest.approx(0.1)


def test_target_net_syncs_every_interval_env_steps() -> None:
    agent = DQNConfig(target_update_interval=100).build(BOX4, gym.spaces.Discrete(2))
    with torch.no_grad():
        agent.q_net[-1].weight.add_(1.0)
    agent.on_progress(99, 1000)
    assert not torch.equal(agent.q_net[-1].weight, agent.target_net[-1].weight)
    agent.on_progress(100, 1000)
    assert torch.equal(agent.q_net[-1].weight, agent.target_net[-1].weight)


def test_dqn_on_box_actions_names_agent_env_and_space() -> None:
    with pytest.raises(SpaceError, match=r"DQN needs a Discrete action space, but env 'Pendulum-v1' has.*Box"):
        DQNConfig().build(BOX4, gym.spaces.Box(-2, 2, (1,)), env_id="Pendulum-v1")


def fit_constant_chain(truncation_is_terminal: bool, gamma: float = 0.98, length: int = 8) -> float:
    """Q-learning on one state with reward 1, the episode cut by a time limit every ``length`` steps.

    Correct handling bootstraps through the cut: Q = 1 + gamma * Q -> 1 / (1 - gamma) = 50. Treating the cut as a
    terminal pulls Q down; under the Huber loss the fixed point is where the 7 clipped gradients of the
    bootstrapped samples, (1 + gamma * Q - Q) each, balance the 1 saturated gradient of the terminal one:
    7 * (1 - 0.02 * Q) = 1 -> Q = 42.9 (with a squared loss it would be 1 / (1 - 7 * gamma / 8) = 7.0).
    """
    torch.manual_seed(0)
    agent = DQNConfig(lr=3e-3, gamma=gamma, hidden_sizes=(16,), target_update_interval=1).build(
        gym.spaces.Box(0, 1, (1,)), gym.spaces.Discrete(1), seed=0
    )
    ends = (np.arange(length) == length - 1).astype(bool)  # the last step of each episode is truncated
    batch = {
        "obs": np.ones((length, 1), np.float32),
        "next_obs": np.ones((length, 1), np.float32),
        "action": np.zeros(length, np.int64),
        "reward": np.ones(length, np.float32),
        "terminated": ends if truncation_is_terminal else np.zeros(length, bool),
        "truncated": ends,
    }
    for step in range(3000):
        agent.on_progress(step, 3000)  # target sync every update
        agent.update(batch)
    with torch.no_grad():
        return float(agent.q_net(torch.ones(1, 1)).item())


def test_infinite_horizon_value_bootstraps_through_truncation() -> None:
    assert abs(fit_constant_chain(truncation_is_terminal=False) - 50.0) < 1.0
    # negative control: the same learner with truncation treated as termination misses by far more
    assert abs(fit_constant_chain(truncation_is_terminal=True) - 50.0) > 5.0

"""Checkpointable: every agent saves what it lists and restores it in place."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from cardio.agents.dqn import DQNConfig
from cardio.agents.sac import SACConfig

BOX = gym.spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32)


def test_sac_round_trip_restores_parameters_alpha_and_optimiser_in_place() -> None:
    source, target = (SACConfig(hidden_sizes=(8,)).build(BOX, BOX, seed=s) for s in (0, 1))
    with torch.no_grad():
        source.log_alpha.fill_(-1.5)
    log_alpha, optimizer_params = target.log_alpha, target.alpha_optimizer.param_groups[0]["params"]
    target.load_state_dict(source.state_dict())
    assert target.log_alpha is log_alpha and optimizer_params[0] is log_alpha  # the optimiser still trains it
    assert target.log_alpha.item() == pytest.approx(-1.5)
    for a, b in zip(source.actor.parameters(), target.actor.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_dqn_round_trip_restores_counters_and_generator() -> None:
    space = gym.spaces.Discrete(4)
    source, target = (DQNConfig(hidden_sizes=(8,)).build(BOX, space, seed=s) for s in (0, 1))
    source.epsilon, source.target_syncs = 0.3, 7
    target.load_state_dict(source.state_dict())
    assert (target.epsilon, target.target_syncs) == (0.3, 7)
    assert source.rng.random() == target.rng.random()  # same generator state: same next draw


def test_a_checkpoint_missing_parts_names_them() -> None:
    agent = DQNConfig(hidden_sizes=(8,)).build(BOX, gym.spaces.Discrete(2), seed=0)
    state = agent.state_dict()
    del state["optimizer"]
    with pytest.raises(KeyError, match=r"DQN checkpoint lacks \['optimizer'\]"):
        agent.load_state_dict(state)

"""Agents: one file per algorithm, numpy at the boundary."""

from cardio.agents.base import Agent, SpaceError, require_space
from cardio.agents.dqn import DQN, DQNConfig

__all__ = ["DQN", "Agent", "DQNConfig", "SpaceError", "require_space"]

"""Agents: one file per algorithm, numpy at the boundary."""

from cardio.agents.base import Agent, AgentConfig, SpaceError, require_space
from cardio.agents.dqn import DQN, DQNConfig

__all__ = ["DQN", "Agent", "AgentConfig", "DQNConfig", "SpaceError", "require_space"]

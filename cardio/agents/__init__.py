"""Agents: one file per algorithm, numpy at the boundary.

``DQN`` and ``DQNConfig`` are imported on first use, so ``import cardio.agents`` does not import torch (a JAX
agent's run never needs it).
"""

from typing import Any

from cardio.agents.base import Agent, AgentConfig, SpaceError, require_space
from cardio.agents.configs import DQNConfig

__all__ = ["DQN", "Agent", "AgentConfig", "DQNConfig", "SpaceError", "require_space"]


def __getattr__(name: str) -> Any:
    if name == "DQN":  # the torch agent: imported only when asked for
        from cardio.agents.dqn import DQN

        return DQN
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

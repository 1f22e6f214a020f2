"""Agents: one file per algorithm, numpy at the boundary.

Importing this package imports no framework: ``DQN``/``DQNConfig`` load torch on first use, so a JAX run
that only needs :class:`Agent` never pays for torch.
"""

from typing import Any

from cardio.agents.base import Agent, AgentConfig, SpaceError, require_space

__all__ = ["DQN", "Agent", "AgentConfig", "DQNConfig", "SpaceError", "require_space"]


def __getattr__(name: str) -> Any:
    if name in ("DQN", "DQNConfig"):
        from cardio.agents import dqn

        return getattr(dqn, name)
    raise AttributeError(f"module 'cardio.agents' has no attribute {name!r}")

"""The critic ensemble the continuous-action agents share: ``n_critics`` Q-networks ``Q_i(obs, action)``.

SAC, TD3 (and DDPG, TD3+BC) and IQL each keep a ``nn.ModuleList`` of :class:`Critic` and read it through
:func:`q_values`, ``[n_critics, B]``. How an agent reduces over the ensemble is part of its algorithm and stays in
its own file: the clipped double-Q target is the *minimum* over the target critics (SAC, TD3, IQL's value
target), an actor loss reads the first critic (TD3) or the minimum (SAC), and each reduction has a test that fails
when it becomes another one (``tests/test_ensembles.py``, ``tests/test_jax_ensembles.py``).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import torch
from torch import nn

from cardio.agents.networks import make_torso, mlp

__all__ = ["Critic", "q_values"]


class Critic(nn.Module):
    """``Q(obs, action) [B]``: the observation's encoding (flat observations pass through as they are; images
    and Dict / Tuple observations go through :func:`make_torso`'s encoders) concatenated with the action, then
    an MLP with a scalar output.

    Args:
        observation_space: the env's single-env observation space.
        action_dim: width of the flat action.
        hidden_sizes: hidden widths of the MLP.
        activation: activation class between its layers (``agent.activation``).
    """

    def __init__(
        self,
        observation_space: gym.Space,
        action_dim: int,
        hidden_sizes: tuple[int, ...],
        activation: type[nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        self.encoder = make_torso(observation_space, (), activation)
        self.q = mlp(self.encoder.features_dim + action_dim, hidden_sizes, 1, activation)

    def forward(self, obs: Any, action: torch.Tensor) -> torch.Tensor:
        return self.q(torch.cat([self.encoder(obs), action], dim=1)).squeeze(1)


def q_values(critics: nn.ModuleList, obs: Any, action: torch.Tensor) -> torch.Tensor:
    """``[n_critics, B]`` Q-values of ``(obs, action)`` pairs, action in ``[-1, 1]``."""
    return torch.stack([q(obs, action) for q in critics])

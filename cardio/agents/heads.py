"""Policy heads: a linear layer from torso features to an action distribution.

Every head is an ``nn.Module`` whose ``forward(features [B, F])`` returns a distribution object with the same
four methods, so an agent can be written once for Discrete and Box actions:

``sample() -> action [B, ...]``, ``mode() -> action [B, ...]`` (the deterministic action used for evaluation),
``log_prob(action) -> [B]`` (summed over action dimensions), ``entropy() -> [B]``.

Shapes: B batch, F feature width, A action dimensions (Box) or number of actions (Discrete).
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import torch
from torch import nn


class Categorical:
    """Distribution over ``A`` discrete actions from unnormalised ``logits [B, A]``."""

    def __init__(self, logits: torch.Tensor) -> None:
        self.logits = torch.log_softmax(logits, dim=-1)  # normalised log-probabilities (far cheaper than logsumexp)

    def sample(self) -> torch.Tensor:
        # Gumbel-max: argmax(log p + Gumbel noise) is a draw from p; several times cheaper than multinomial.
        return (self.logits - torch.empty_like(self.logits).exponential_().log()).argmax(dim=-1)

    def mode(self) -> torch.Tensor:
        return self.logits.argmax(dim=-1)

    def log_prob(self, action: torch.Tensor) -> torch.Tensor:
        return self.logits.gather(-1, action.long().unsqueeze(-1)).squeeze(-1)

    def entropy(self) -> torch.Tensor:
        return -(self.logits.exp() * self.logits).sum(dim=-1)


class DiagGaussian:
    """Independent normal per action dimension: ``mean [B, A]`` and ``log_std [A]`` or ``[B, A]``."""

    def __init__(self, mean: torch.Tensor, log_std: torch.Tensor) -> None:
        self.mean = mean
        self.log_std = log_std.expand_as(mean)

    def sample(self) -> torch.Tensor:
        return self.mean + self.log_std.exp() * torch.randn_like(self.mean)

    def mode(self) -> torch.Tensor:
        return self.mean

    def log_prob(self, action: torch.Tensor) -> torch.Tensor:
        z = (action - self.mean) * torch.exp(-self.log_std)
        return (-0.5 * z.pow(2) - self.log_std - 0.5 * math.log(2 * math.pi)).sum(dim=-1)

    def entropy(self) -> torch.Tensor:
        return (self.log_std + 0.5 * (1.0 + math.log(2 * math.pi))).sum(dim=-1)


class CategoricalHead(nn.Module):
    """Logits for a ``Discrete(A)`` action space.

    Args:
        features_dim: torso output width F.
        num_actions: A.
    """

    def __init__(self, features_dim: int, num_actions: int) -> None:
        super().__init__()
        self.linear = nn.Linear(features_dim, num_actions)

    def forward(self, features: torch.Tensor) -> Categorical:
        return Categorical(self.linear(features))


class DiagGaussianHead(nn.Module):
    """State-dependent mean, state-independent learned log standard deviation (SB3's PPO/A2C Gaussian).

    Args:
        features_dim: torso output width F.
        action_dim: A, the flat size of the Box action space.
        log_std_init: initial log standard deviation of every dimension (0 = std 1).
    """

    def __init__(self, features_dim: int, action_dim: int, log_std_init: float = 0.0) -> None:
        super().__init__()
        self.linear = nn.Linear(features_dim, action_dim)
        self.log_std = nn.Parameter(torch.full((action_dim,), float(log_std_init)))

    def forward(self, features: torch.Tensor) -> DiagGaussian:
        return DiagGaussian(self.linear(features), self.log_std)


def policy_head(features_dim: int, action_space: gym.Space, log_std_init: float = 0.0) -> nn.Module:
    """Categorical head for Discrete actions, diagonal Gaussian head for Box actions.

    Raises:
        TypeError: any other action space (agents check spaces first with ``require_space``).
    """
    if isinstance(action_space, gym.spaces.Discrete):
        return CategoricalHead(features_dim, int(action_space.n))
    if isinstance(action_space, gym.spaces.Box):
        return DiagGaussianHead(features_dim, int(np.prod(action_space.shape)), log_std_init)
    raise TypeError(f"no policy head for action space {action_space}")

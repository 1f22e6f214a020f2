"""Policy heads: a linear layer from torso features to an action distribution.

Every head is an ``nn.Module`` whose ``forward(features [B, F])`` returns a distribution object with the same
four methods, so an agent can be written once for Discrete and Box actions:

``sample() -> action [B, ...]``, ``mode() -> action [B, ...]`` (the deterministic action used for evaluation),
``log_prob(action) -> [B]`` (summed over action dimensions), ``entropy() -> [B]``.

Shapes: B batch, F feature width, A action dimensions (Box) or number of actions (Discrete).

:class:`SquashedGaussianHead` (SAC) is the exception: it returns ``(action, log_prob)`` directly, because its
reparameterised sample and the tanh log-density correction belong together.
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


class SquashedGaussianHead(nn.Module):
    """Tanh-squashed diagonal Gaussian for bounded continuous actions (SAC, Haarnoja et al. 2018, appendix C).

    ``u ~ N(mean, std^2)``, ``a = tanh(u)`` in ``[-1, 1]``; the log-density gets the change-of-variables term
    ``log pi(a) = log N(u) - sum_i log(1 - tanh(u_i)^2)``, computed as ``2 * (log 2 - u - softplus(-2u))`` to stay
    finite when ``|u|`` is large. The agent rescales ``a`` to the env's bounds.

    Args:
        in_features: F.
        action_dim: A.
        log_std_min: lower clamp of the log standard deviation (SB3: -20).
        log_std_max: upper clamp (SB3: 2).
    """

    def __init__(self, in_features: int, action_dim: int, log_std_min: float = -20.0, log_std_max: float = 2.0):
        super().__init__()
        self.mean = nn.Linear(in_features, action_dim)
        self.log_std = nn.Linear(in_features, action_dim)
        self.log_std_min, self.log_std_max = log_std_min, log_std_max

    def forward(self, features: torch.Tensor, deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """``(action [B, A] in [-1, 1], log_prob [B])``; ``deterministic`` gives ``tanh(mean)`` (log-prob still
        evaluated there)."""
        mean = self.mean(features)
        log_std = self.log_std(features).clamp(self.log_std_min, self.log_std_max)
        std = log_std.exp()
        u = mean if deterministic else mean + std * torch.randn_like(mean)  # reparameterised sample [B, A]
        gaussian_log_prob = (-0.5 * ((u - mean) / std) ** 2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        log_det = (2.0 * (math.log(2.0) - u - nn.functional.softplus(-2.0 * u))).sum(-1)  # sum log(1 - tanh(u)^2)
        return torch.tanh(u), gaussian_log_prob - log_det


def to_env_bounds(action: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Map ``[-1, 1]`` to the env's Box bounds ``[low, high]`` (affine, per action dim)."""
    return low + 0.5 * (action + 1.0) * (high - low)


def from_env_bounds(action: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`to_env_bounds`: stored env actions back to ``[-1, 1]`` for the critics."""
    return 2.0 * (action - low) / (high - low) - 1.0

"""Policy heads: turn torso features into action distributions.

Legend: B batch rows, F feature width, A action dims.
"""

from __future__ import annotations

import math

import torch
from torch import nn


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

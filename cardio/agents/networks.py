"""Network torsos and small torch helpers shared by the shipped agents."""

from __future__ import annotations

from collections.abc import Sequence

import gymnasium as gym
import numpy as np
import torch
from torch import nn


def flat_dim(space: gym.Space) -> int:
    """Input width of an MLP reading a Box or Discrete observation (Discrete is one-hot)."""
    if isinstance(space, gym.spaces.Discrete):
        return int(space.n)
    if isinstance(space, gym.spaces.Box):
        return int(np.prod(space.shape))
    raise TypeError(f"no flat encoding for {space}")


def mlp(in_dim: int, hidden_sizes: Sequence[int], out_dim: int, activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """``Linear -> act`` for every hidden size, then a linear head of ``out_dim``."""
    layers: list[nn.Module] = []
    for width in hidden_sizes:
        layers += [nn.Linear(in_dim, width), activation()]
        in_dim = width
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


def to_tensor(x: np.ndarray, device: torch.device | str, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Numpy -> torch without a copy when dtype and device allow."""
    return torch.as_tensor(np.asarray(x), device=device).to(dtype)


def hard_update(target: nn.Module, source: nn.Module) -> None:
    """``target <- source``, parameters and buffers."""
    target.load_state_dict(source.state_dict())


@torch.no_grad()
def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """Polyak averaging ``target <- tau * source + (1 - tau) * target``."""
    for t, s in zip(target.parameters(), source.parameters(), strict=True):
        t.lerp_(s, tau)


def argmax_random_ties(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Row-wise argmax over the last axis, choosing uniformly among tied maxima.

    ``np.argmax`` returns the first maximum, which biases a fresh or quantised Q-head toward action 0.
    """
    is_max = values == values.max(axis=-1, keepdims=True)
    noise = rng.random(values.shape)
    return np.argmax(np.where(is_max, noise, -1.0), axis=-1)

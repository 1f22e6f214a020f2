"""Behaviour cloning: supervised learning of the dataset's actions, the baseline every offline method must beat.

Pomerleau 1991, "Efficient Training of Artificial Neural Networks for Autonomous Navigation" (Neural Computation
3(1)); the continuous form used here (a deterministic tanh actor fit by mean squared error) is the BC baseline of
Fujimoto & Gu 2021 (arXiv:2106.06860), whose defaults these are: two hidden layers of 256, Adam at 3e-4, batches
of 256 (``configs/runner/offline.yaml``).

* Discrete actions: a categorical policy, loss ``-log pi(a|s)`` (cross-entropy); the greedy action is the mode,
  ties broken at random.
* Box actions: ``pi(s) = tanh(f(s))`` in ``[-1, 1]``, loss ``|pi(s) - a'|^2`` with the dataset action ``a'``
  mapped from the env's bounds to ``[-1, 1]`` first, then rescaled to the bounds in :meth:`BC.act`.

Metrics returned by :meth:`BC.update`: ``train/loss``; ``train/accuracy`` (discrete: share of batch actions that
are the policy's mode) or ``train/action_mse`` (Box, in ``[-1, 1]`` units: the same number as the loss).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cardio.agents.base import AgentConfig, require_space
from cardio.agents.heads import from_env_bounds, to_env_bounds
from cardio.agents.networks import argmax_random_ties, flat_dim, mlp, to_tensor
from cardio.agents.state import Checkpointable


@dataclass
class BCConfig(AgentConfig["BC"]):
    """Behaviour-cloning hyperparameters; the same keys, in the same order, as ``configs/agent/bc.yaml``."""

    zoo_name: ClassVar[str] = "bc"
    """Algorithm key of tuned files, ``configs/zoo/bc/<EnvId>.yaml`` (none shipped)."""
    observation_spaces: ClassVar[tuple[type[gym.Space], ...]] = (gym.spaces.Box,)
    """Observation spaces it takes."""
    action_spaces: ClassVar[tuple[type[gym.Space], ...]] = (gym.spaces.Discrete, gym.spaces.Box)
    """Action spaces it takes."""

    lr: float = 3e-4
    """Adam learning rate."""
    hidden_sizes: tuple[int, ...] = (256, 256)
    """Widths of the policy's hidden layers (ReLU)."""

    def agent_class(self) -> type[BC]:
        return BC


class BC(Checkpointable):
    """Behaviour cloning for Discrete or Box actions; see the module docstring for the losses and metrics."""

    checkpointed = ("policy", "optimizer", "rng")

    def __init__(
        self,
        observation_space: gym.Space,
        action_space: gym.Space,
        config: BCConfig | None = None,
        *,
        device: str = "cpu",
        seed: int | None = None,
        env_id: str | None = None,
    ) -> None:
        require_space("BC", "action", action_space, BCConfig.action_spaces, env_id)
        require_space("BC", "observation", observation_space, BCConfig.observation_spaces, env_id)
        self.config = c = config or BCConfig()
        self.device = dev = torch.device(device)
        self.rng = np.random.default_rng(seed)  # argmax tie-breaks
        self.discrete = isinstance(action_space, gym.spaces.Discrete)
        obs_dim = flat_dim(observation_space)
        if self.discrete:
            self.policy: nn.Module = mlp(obs_dim, c.hidden_sizes, int(action_space.n)).to(dev)  # type: ignore[attr-defined]
        else:
            self.action_shape: tuple[int, ...] = tuple(action_space.shape or ())
            self.low = to_tensor(action_space.low, dev).flatten()  # type: ignore[attr-defined]
            self.high = to_tensor(action_space.high, dev).flatten()  # type: ignore[attr-defined]
            self.policy = nn.Sequential(mlp(obs_dim, c.hidden_sizes, flat_dim(action_space)), nn.Tanh()).to(dev)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=c.lr, fused=True)

    def act(self, obs: np.ndarray, explore: bool) -> tuple[np.ndarray, dict[str, Any]]:
        """The cloned policy's action (its mode; ``explore`` is ignored: BC has no exploration of its own)."""
        with torch.no_grad():
            out = self.policy(to_tensor(obs, self.device).flatten(1))
        if self.discrete:
            return argmax_random_ties(out.cpu().numpy(), self.rng), {}
        action = to_env_bounds(out, self.low, self.high).cpu().numpy()
        return action.astype(np.float32).reshape(len(obs), *self.action_shape), {}

    def update(self, batch: dict[str, Any]) -> dict[str, Any]:
        """One supervised step on a ``[B, ...]`` batch of dataset ``(obs, action)`` pairs."""
        obs = to_tensor(batch["obs"], self.device).flatten(1)
        out = self.policy(obs)
        # Loss: cross-entropy of the dataset action, or its squared error in [-1, 1] units.
        if self.discrete:
            action = to_tensor(batch["action"], self.device, torch.long).reshape(-1)
            loss = F.cross_entropy(out, action)
            extra = {"train/accuracy": (out.argmax(dim=1) == action).float().mean().item()}
        else:
            target = from_env_bounds(to_tensor(batch["action"], self.device).flatten(1), self.low, self.high)
            loss = F.mse_loss(out, target)
            extra = {"train/action_mse": loss.item()}
        # Optimiser step.
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return {"train/loss": loss.item(), **extra}

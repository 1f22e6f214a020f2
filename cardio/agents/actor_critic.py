"""The actor-critic network PPO and A2C share: a policy (torso + head) and a value function (torso + linear).

Matches SB3's ``ActorCriticPolicy`` defaults: separate torsos for actor and critic (a shared one with
``share_torso``, e.g. for a Nature-CNN), tanh MLPs, orthogonal init with gain sqrt(2) for torsos, 0.01 for the
policy head and 1 for the value head. Box actions are sampled unbounded and clipped to the space only for the
env: the unclipped sample is kept as the ``raw_action`` extra so its log-probability stays exact.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from cardio.agents.heads import policy_head
from cardio.agents.networks import ACTIVATIONS, make_torso, obs_batch_size, obs_to_tensor, orthogonal_init


class ActorCritic(nn.Module):
    """Policy and value networks for a Discrete or Box action space.

    Args:
        observation_space: any space :func:`~cardio.agents.networks.make_torso` reads: Box (MLP, or Nature-CNN
            for uint8 images), Discrete, and Dict / Tuple (one encoder per key).
        action_space: Discrete (categorical head) or Box (diagonal Gaussian head).
        hidden_sizes: MLP torso widths of the actor (and of the critic unless ``vf_hidden_sizes``).
        activation: activation name, one of ``ACTIVATIONS``.
        ortho_init: SB3's orthogonal initialisation (otherwise torch's default).
        log_std_init: initial log standard deviation of a Gaussian head.
        share_torso: actor and critic read the same torso (its gradients come from both losses).
        vf_hidden_sizes: the critic's own torso widths (SB3's ``net_arch=dict(pi=..., vf=...)``); ``None``: as the
            actor's.
        use_sde: gSDE exploration (:class:`~cardio.agents.heads.StateDependentNoiseHead`) for Box actions.
    """

    def __init__(
        self,
        observation_space: gym.Space,
        action_space: gym.Space,
        hidden_sizes: Sequence[int] = (64, 64),
        activation: str = "tanh",
        ortho_init: bool = True,
        log_std_init: float = 0.0,
        share_torso: bool = False,
        vf_hidden_sizes: Sequence[int] | None = None,
        use_sde: bool = False,
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"agent.activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        act_cls = ACTIVATIONS[activation]
        self.pi_torso = make_torso(observation_space, hidden_sizes, act_cls)
        if share_torso and vf_hidden_sizes is not None and list(vf_hidden_sizes) != list(hidden_sizes):
            raise ValueError(
                f"agent.share_torso=true needs one torso, but agent.hidden_sizes={list(hidden_sizes)} and "
                f"agent.vf_hidden_sizes={list(vf_hidden_sizes)} differ; drop one of them"
            )
        vf_sizes = hidden_sizes if vf_hidden_sizes is None else vf_hidden_sizes
        self.vf_torso = self.pi_torso if share_torso else make_torso(observation_space, vf_sizes, act_cls)
        self.pi_head = policy_head(self.pi_torso.features_dim, action_space, log_std_init, use_sde)
        self.vf_head = nn.Linear(self.vf_torso.features_dim, 1)
        if ortho_init:
            for module, gain in ((self.pi_torso, math.sqrt(2)), (self.vf_torso, math.sqrt(2))):
                orthogonal_init(module, gain)
            orthogonal_init(self.pi_head, 0.01)
            orthogonal_init(self.vf_head, 1.0)
        self.box = action_space if isinstance(action_space, gym.spaces.Box) else None

    def value(self, obs: Any) -> torch.Tensor:
        """``V(obs)``, shape ``[B]``."""
        return self.vf_head(self.vf_torso(obs)).squeeze(-1)

    def evaluate(self, obs: Any, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(log_prob [B], entropy [B], value [B])`` of the current networks for stored actions."""
        dist = self.pi_head(self.pi_torso(obs))
        if self.box is not None:
            action = action.flatten(1)
        return dist.log_prob(action), dist.entropy(), self.value(obs)

    @torch.inference_mode()
    def act(self, obs: Any, explore: bool, device: torch.device) -> tuple[np.ndarray, dict[str, Any]]:
        """Sampled (``explore``) or modal actions ``[N, ...]`` and the extras on-policy updates need:
        ``log_prob [N]``, ``value [N]`` and, for Box actions, the unclipped sample ``raw_action``."""
        obs_t = obs_to_tensor(obs, device)
        dist = self.pi_head(self.pi_torso(obs_t))
        action = dist.sample() if explore else dist.mode()
        extras: dict[str, Any] = {}
        if explore:
            extras = {"log_prob": dist.log_prob(action).cpu().numpy(), "value": self.value(obs_t).cpu().numpy()}
        if self.box is None:
            return action.cpu().numpy(), extras
        raw = action.cpu().numpy().reshape(obs_batch_size(obs), *self.box.shape)
        if explore:
            extras["raw_action"] = raw
        return np.clip(raw, self.box.low, self.box.high).astype(self.box.dtype), extras

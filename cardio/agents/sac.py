"""SAC: soft actor-critic with twin Q-networks and automatic entropy tuning.

Haarnoja et al. 2018, "Soft Actor-Critic Algorithms and Applications" (arXiv:1812.05905). Defaults are SB3's SAC
defaults; the rl-zoo values per env live in ``configs/zoo/sac/<EnvId>.yaml``. The policy is a tanh-squashed Gaussian
in ``[-1, 1]``, rescaled to the env's bounds in :meth:`SAC.act`; stored actions are mapped back for the critics.

Metrics returned by :meth:`SAC.update`: ``train/actor_loss``, ``train/critic_loss`` (sum of the twin MSEs),
``train/ent_coef`` (alpha), ``train/ent_coef_loss`` (auto tuning only), ``train/q_mean`` (first critic on the
batch), ``train/entropy`` (minus the mean log-prob of fresh policy actions), ``train/learning_rate``.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from cardio.agents.base import require_space
from cardio.agents.configs import SACConfig  # the knobs, shared with the JAX twin; re-exported here
from cardio.agents.critics import Critic, q_values
from cardio.agents.heads import NoiseResampler, SquashedGaussianHead, from_env_bounds, to_env_bounds
from cardio.agents.networks import (
    activation_class,
    check_lr_schedule,
    flat_dim,
    make_torso,
    obs_batch_size,
    obs_to_tensor,
    scheduled_lr,
    soft_update,
    to_tensor,
)
from cardio.agents.state import Checkpointable


class Actor(nn.Module):
    """Torso and a :class:`SquashedGaussianHead`: ``obs [B, ...] -> (action [B, A] in [-1, 1], log_prob [B])``."""

    def __init__(
        self, observation_space: gym.Space, hidden_sizes: tuple[int, ...], action_dim: int,
        activation: type[nn.Module] = nn.ReLU, use_sde: bool = False, log_std_init: float = -3.0,
    ) -> None:  # fmt: skip
        super().__init__()
        self.torso = make_torso(observation_space, hidden_sizes, activation)
        self.head = SquashedGaussianHead(
            self.torso.features_dim, action_dim, use_sde=use_sde, log_std_init=log_std_init
        )

    def forward(self, obs: Any, deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head(self.torso(obs), deterministic)


class SAC(Checkpointable):
    """Soft actor-critic agent; see the module docstring for the paper and metric names."""

    checkpointed = (
        "actor",
        "critics",
        "target_critics",
        "actor_optimizer",
        "critic_optimizer",
        "log_alpha",
        "alpha_optimizer",
        "lr",
    )

    def __init__(
        self,
        observation_space: gym.Space,
        action_space: gym.Space,
        config: SACConfig | None = None,
        *,
        device: str = "cpu",
        seed: int | None = None,
        env_id: str | None = None,
    ) -> None:
        require_space("SAC", "action", action_space, SACConfig.action_spaces, env_id)
        require_space("SAC", "observation", observation_space, SACConfig.observation_spaces, env_id)
        self.config = c = config or SACConfig()
        self.device = dev = torch.device(device)  # networks start from torch's global RNG, seeded by the builder
        action_dim = flat_dim(action_space)
        self.action_shape: tuple[int, ...] = tuple(action_space.shape or ())
        self.low = to_tensor(action_space.low, dev).flatten()  # type: ignore[attr-defined]
        self.high = to_tensor(action_space.high, dev).flatten()  # type: ignore[attr-defined]
        check_lr_schedule(c.lr_schedule)
        act_cls = activation_class(c.activation)
        self.actor = Actor(observation_space, c.hidden_sizes, action_dim, act_cls, c.use_sde, c.log_std_init).to(dev)
        qf_sizes = c.hidden_sizes if c.qf_hidden_sizes is None else c.qf_hidden_sizes
        critics = (Critic(observation_space, action_dim, qf_sizes, act_cls) for _ in range(c.n_critics))
        self.critics = nn.ModuleList(critics).to(dev)
        sde_head = self.actor.head.sde
        self.sde = None if sde_head is None else NoiseResampler(sde_head, c.sde_sample_freq)
        self.act_at_warmup = c.use_sde and c.use_sde_at_warmup  # the runner asks: own policy before learning_starts
        self.target_critics = copy.deepcopy(self.critics).requires_grad_(False)
        # fused: one kernel per optimiser step instead of a loop over tensors (about 3x cheaper on CPU)
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=c.lr, fused=True)
        self.critic_optimizer = torch.optim.Adam(self.critics.parameters(), lr=c.lr, fused=True)
        # Entropy coefficient: learnt in log space from an initial value, or fixed.
        self.target_entropy = -float(action_dim) if c.target_entropy == "auto" else float(c.target_entropy)
        self.auto_alpha = isinstance(c.ent_coef, str) and c.ent_coef.startswith("auto")
        start = str(c.ent_coef).partition("_")[2]  # "auto_0.1" -> "0.1"
        alpha0 = (float(start) if start else 1.0) if self.auto_alpha else float(c.ent_coef)
        self.log_alpha = torch.tensor(math.log(alpha0), device=dev, requires_grad=self.auto_alpha)
        self.alpha_optimizer = torch.optim.Adam([self.log_alpha], lr=c.lr) if self.auto_alpha else None
        self.lr = c.lr  # the scheduled learning rate now

    def on_progress(self, env_steps: int, total_steps: int) -> None:
        """The learning-rate schedule (all three optimisers, as SB3) is a function of env steps."""
        c = self.config
        optimizers = [self.actor_optimizer, self.critic_optimizer, self.alpha_optimizer]
        self.lr = scheduled_lr(optimizers, c.lr, c.lr_schedule, max(1.0 - env_steps / max(total_steps, 1), 0.0))

    def act(self, obs: Any, explore: bool) -> tuple[np.ndarray, dict[str, Any]]:
        """Sampled actions when exploring, ``tanh(mean)`` otherwise, in the env's bounds."""
        if explore and self.sde is not None:
            self.sde.before_act(obs_batch_size(obs))
        with torch.no_grad():
            action, _ = self.actor(obs_to_tensor(obs, self.device), deterministic=not explore)
            action = to_env_bounds(action, self.low, self.high)
        return action.cpu().numpy().reshape(obs_batch_size(obs), *self.action_shape), {}

    def update(self, batch: dict[str, Any]) -> dict[str, Any]:
        """One gradient step of alpha, critics and actor on a ``[B, ...]`` batch, then the soft target update."""
        c, dev = self.config, self.device
        obs = obs_to_tensor(batch["obs"], dev)
        next_obs = obs_to_tensor(batch["next_obs"], dev)
        action = from_env_bounds(to_tensor(batch["action"], dev).flatten(1), self.low, self.high)
        reward = to_tensor(batch["reward"], dev)
        not_terminal = 1.0 - to_tensor(batch["terminated"], dev)
        discount = to_tensor(batch["discount"], dev) if "discount" in batch else c.gamma
        metrics: dict[str, Any] = {}

        # gSDE: one fresh noise matrix for this update's policy samples (SB3 redraws it every gradient step).
        if self.sde is not None:
            self.sde.head.resample(1)
            self.sde.new_rollout()  # the next collection phase draws one matrix per env again
        # Entropy coefficient: raise alpha when the policy's entropy is below the target, lower it above.
        pi_action, log_prob = self.actor(obs)
        alpha = self.log_alpha.detach().exp()
        if self.alpha_optimizer is not None:
            alpha_loss = -(self.log_alpha * (log_prob.detach() + self.target_entropy)).mean()
            self.alpha_optimizer.zero_grad(set_to_none=True)
            alpha_loss.backward()
            self.alpha_optimizer.step()
            metrics["train/ent_coef_loss"] = alpha_loss.item()
        # Soft TD target without grad: min over target critics minus alpha * log-prob of the next action.
        with torch.no_grad():
            next_action, next_log_prob = self.actor(next_obs)
            next_q = q_values(self.target_critics, next_obs, next_action).min(dim=0).values
            td_target = reward + discount * not_terminal * (next_q - alpha * next_log_prob)
        # Critic loss: MSE of every critic, importance-weighted under prioritized replay.
        q = q_values(self.critics, obs, action)  # [n_critics, B]
        weight = to_tensor(batch["weight"], dev) if "weight" in batch else 1.0
        critic_loss = 0.5 * ((q - td_target) ** 2 * weight).mean(dim=1).sum()
        self.critic_optimizer.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_optimizer.step()
        # Actor loss: maximise min-Q minus alpha * log-prob. The critics pass gradients to the action but are not
        # trained here, so their weight gradients are not computed at all.
        self.critics.requires_grad_(False)
        pi_q = q_values(self.critics, obs, pi_action).min(dim=0).values
        actor_loss = (alpha * log_prob - pi_q).mean()
        self.actor_optimizer.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_optimizer.step()
        self.critics.requires_grad_(True)
        # Soft target update.
        soft_update(self.target_critics, self.critics, c.tau)

        metrics |= {
            "train/actor_loss": actor_loss.item(),
            "train/critic_loss": critic_loss.item(),
            "train/ent_coef": alpha.item(),
            "train/q_mean": q[0].mean().item(),
            "train/entropy": -log_prob.mean().item(),
            "train/learning_rate": self.lr,
        }
        if "weight" in batch:
            metrics["td_error"] = (td_target - q[0]).detach().abs().cpu().numpy()
        return metrics

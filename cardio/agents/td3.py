"""TD3: twin delayed deep deterministic policy gradient.

Fujimoto et al. 2018, "Addressing Function Approximation Error in Actor-Critic Methods" (arXiv:1802.09477):
clipped double Q, delayed actor and target updates, and target policy smoothing. Defaults are SB3's TD3 defaults;
the rl-zoo values per env live in ``configs/zoo/td3/<EnvId>.yaml``. DDPG is this agent with one critic, no delay
and no smoothing (``cardio/agents/ddpg.py``). The actor outputs ``tanh`` actions in ``[-1, 1]``; exploration
noise is added there, clipped, and rescaled to the env's bounds in :meth:`TD3.act`.

Metrics returned by :meth:`TD3.update`: ``train/critic_loss`` (sum of the critics' MSEs), ``train/q_mean`` (first
critic on the batch), ``train/actor_loss`` (minus the first critic's Q of the policy's actions; on the
updates that step the actor), ``train/learning_rate``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from cardio.agents.base import AgentConfig, require_space
from cardio.agents.critics import Critic, q_values
from cardio.agents.heads import from_env_bounds, to_env_bounds
from cardio.agents.networks import (
    activation_class,
    check_lr_schedule,
    flat_dim,
    mlp,
    scheduled_lr,
    soft_update,
    to_tensor,
)
from cardio.agents.noise import make_action_noise
from cardio.agents.state import Checkpointable


@dataclass
class TD3Config(AgentConfig["TD3"]):
    """TD3 hyperparameters; the same keys, in the same order, as ``configs/agent/td3.yaml``."""

    zoo_name: ClassVar[str] = "td3"
    """Tuned hyperparameters live in ``configs/zoo/td3/<EnvId>.yaml``."""
    observation_spaces: ClassVar[tuple[type[gym.Space], ...]] = (gym.spaces.Box,)
    """Observation spaces it takes."""
    action_spaces: ClassVar[tuple[type[gym.Space], ...]] = (gym.spaces.Box,)
    """Action spaces it takes."""

    lr: float = 1e-3
    """Adam learning rate of actor and critics (the initial one under a linear schedule)."""
    lr_schedule: str = "constant"
    """``constant`` or ``linear`` (decays to 0 at ``total_steps``, rl-zoo's ``lin_<lr>``)."""
    gamma: float = 0.99
    """Discount per env step (an n-step batch brings its own ``discount`` column instead)."""
    tau: float = 0.005
    """Polyak coefficient of the soft target updates (actor and critics)."""
    hidden_sizes: tuple[int, ...] = (400, 300)
    """Hidden widths of the actor, and of each critic unless ``qf_hidden_sizes``."""
    qf_hidden_sizes: tuple[int, ...] | None = None
    """Each critic's own hidden widths (rl-zoo's ``net_arch: {pi: [...], qf: [...]}``); ``None``: as the actor's."""
    activation: str = "relu"
    """Activation between hidden layers: tanh, relu, elu or gelu (rl-zoo's ``activation_fn``)."""
    n_critics: int = 2
    """Q-networks whose minimum is the TD target (clipped double Q); DDPG uses 1."""
    policy_delay: int = 2
    """Critic updates per actor-and-target update."""
    target_policy_noise: float = 0.2
    """Std of the Gaussian noise on the target action (normalised units); 0 turns smoothing off."""
    target_noise_clip: float = 0.5
    """Clip of that smoothing noise."""
    noise_type: str = "normal"
    """Exploration noise added to the actor's action: ``"normal"``, ``"ou"`` or ``"none"``."""
    noise_std: float = 0.1
    """Std (``"normal"``) or kick scale (``"ou"``) of the exploration noise, in normalised action units."""

    def agent_class(self) -> type[TD3]:
        return TD3


class TD3(Checkpointable):
    """TD3 agent (and DDPG, with ``n_critics=1, policy_delay=1, target_policy_noise=0``); see the module docstring."""

    checkpointed = (
        "actor",
        "critics",
        "target_actor",
        "target_critics",
        "actor_optimizer",
        "critic_optimizer",
        "updates",
        "lr",
        "rng",
    )

    def __init__(
        self,
        observation_space: gym.Space,
        action_space: gym.Space,
        config: TD3Config | None = None,
        *,
        device: str = "cpu",
        seed: int | None = None,
        env_id: str | None = None,
        name: str = "TD3",
    ) -> None:
        require_space(name, "action", action_space, TD3Config.action_spaces, env_id)
        require_space(name, "observation", observation_space, TD3Config.observation_spaces, env_id)
        self.config = c = config or TD3Config()
        self.device = dev = torch.device(device)  # networks start from torch's global RNG, seeded by the builder
        self.rng = np.random.default_rng(seed)  # exploration noise
        obs_dim, action_dim = flat_dim(observation_space), flat_dim(action_space)
        self.action_shape: tuple[int, ...] = tuple(action_space.shape or ())
        self.low = to_tensor(action_space.low, dev).flatten()  # type: ignore[attr-defined]
        self.high = to_tensor(action_space.high, dev).flatten()  # type: ignore[attr-defined]
        check_lr_schedule(c.lr_schedule)
        act_cls = activation_class(c.activation)
        self.actor = nn.Sequential(mlp(obs_dim, c.hidden_sizes, action_dim, act_cls), nn.Tanh()).to(dev)
        qf_sizes = c.hidden_sizes if c.qf_hidden_sizes is None else c.qf_hidden_sizes
        critics = (Critic(observation_space, action_dim, qf_sizes, act_cls) for _ in range(c.n_critics))
        self.critics = nn.ModuleList(critics).to(dev)
        self.target_actor = copy.deepcopy(self.actor).requires_grad_(False)
        self.target_critics = copy.deepcopy(self.critics).requires_grad_(False)
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=c.lr)
        self.critic_optimizer = torch.optim.Adam(self.critics.parameters(), lr=c.lr)
        self.noise = make_action_noise(c.noise_type, action_dim, c.noise_std, self.rng)
        self.updates = 0
        self.lr = c.lr  # the scheduled learning rate now

    def on_progress(self, env_steps: int, total_steps: int) -> None:
        """The learning-rate schedule (actor and critics) is a function of env steps."""
        c = self.config
        optimizers = [self.actor_optimizer, self.critic_optimizer]
        self.lr = scheduled_lr(optimizers, c.lr, c.lr_schedule, max(1.0 - env_steps / max(total_steps, 1), 0.0))

    def act(self, obs: np.ndarray, explore: bool) -> tuple[np.ndarray, dict[str, Any]]:
        """The actor's action, plus clipped exploration noise when ``explore``, in the env's bounds."""
        with torch.no_grad():
            action = self.actor(to_tensor(obs, self.device).flatten(1)).cpu().numpy()  # [N, A] in [-1, 1]
        if explore and self.noise is not None:
            action = np.clip(action + self.noise(len(obs)), -1.0, 1.0)
        env_action = to_env_bounds(torch.as_tensor(action), self.low.cpu(), self.high.cpu()).numpy()
        return env_action.astype(np.float32).reshape(len(obs), *self.action_shape), {}

    def on_episode_end(self, ended: np.ndarray) -> None:
        """Restart the exploration noise of envs whose episode ended (``[N]`` bool; matters for OU noise)."""
        if self.noise is not None:
            self.noise.reset(ended)

    def actor_loss(self, obs: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """The delayed actor step's loss, minus the first critic's mean Q of the actor's actions, and extra metrics
        (none here; TD3+BC overrides this with its BC term).

        Args:
            obs: ``[B, D]`` flat observations of the batch.
            action: ``[B, A]`` the batch's actions in ``[-1, 1]`` units (unused by TD3).
        """
        return -q_values(self.critics[:1], obs, self.actor(obs)).mean(), {}

    def update(self, batch: dict[str, Any]) -> dict[str, Any]:
        """One critic step on a ``[B, ...]`` batch; every ``policy_delay``-th call also an actor step and the soft
        target updates."""
        c, dev = self.config, self.device
        obs = to_tensor(batch["obs"], dev).flatten(1)
        next_obs = to_tensor(batch["next_obs"], dev).flatten(1)
        action = from_env_bounds(to_tensor(batch["action"], dev).flatten(1), self.low, self.high)
        reward = to_tensor(batch["reward"], dev)
        not_terminal = 1.0 - to_tensor(batch["terminated"], dev)
        discount = to_tensor(batch["discount"], dev) if "discount" in batch else c.gamma
        self.updates += 1

        # TD target without grad: smoothed target action, min over target critics.
        with torch.no_grad():
            clip = c.target_noise_clip
            smoothing = (torch.randn_like(action) * c.target_policy_noise).clamp(-clip, clip)
            next_action = (self.target_actor(next_obs) + smoothing).clamp(-1.0, 1.0)
            next_q = q_values(self.target_critics, next_obs, next_action).min(dim=0).values
            td_target = reward + discount * not_terminal * next_q
        # Critic loss: MSE of every critic, importance-weighted under prioritized replay.
        q = q_values(self.critics, obs, action)  # [n_critics, B]
        weight = to_tensor(batch["weight"], dev) if "weight" in batch else 1.0
        critic_loss = ((q - td_target) ** 2 * weight).mean(dim=1).sum()
        self.critic_optimizer.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_optimizer.step()
        metrics: dict[str, Any] = {
            "train/critic_loss": critic_loss.item(),
            "train/q_mean": q[0].mean().item(),
            "train/learning_rate": self.lr,
        }
        # Delayed actor step (:meth:`actor_loss`) and soft target updates.
        if self.updates % c.policy_delay == 0:
            actor_loss, parts = self.actor_loss(obs, action)
            self.actor_optimizer.zero_grad(set_to_none=True)
            actor_loss.backward()
            self.actor_optimizer.step()
            soft_update(self.target_critics, self.critics, c.tau)
            soft_update(self.target_actor, self.actor, c.tau)
            metrics |= {"train/actor_loss": actor_loss.item(), **parts}
        if "weight" in batch:
            metrics["td_error"] = (td_target - q[0]).detach().abs().cpu().numpy()
        return metrics

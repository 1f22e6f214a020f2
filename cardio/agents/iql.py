"""IQL: implicit Q-learning, never querying Q at an action the dataset did not take.

Kostrikov, Nair & Levine 2021, "Offline Reinforcement Learning with Implicit Q-Learning" (arXiv:2110.06169).
Three losses per update, all on dataset transitions ``(s, a, r, s')``:

    value:  L_V = E[ |tau - 1(u < 0)| u^2 ],  u = min_i Q'_i(s, a) - V(s)      (expectile tau of Q over the data's a)
    critic: L_Q = sum_i E[ (r + gamma (1 - terminated) V(s') - Q_i(s, a))^2 ]
    policy: L_pi = -E[ min(exp(beta (min_i Q'_i(s, a) - V(s))), w_max) log pi(a|s) ]   (advantage-weighted regression)

With ``tau > 0.5`` the value weighs positive ``u`` (Q above V) more, so V tracks an upper expectile of Q: the
best the data's own actions achieve, without a max over unseen actions. The policy clones the dataset's actions,
weighted up where their advantage is high; ``beta`` is the inverse temperature and ``w_max`` clips the weight.
``Q'`` are Polyak-averaged target critics. The policy is a Gaussian in ``[-1, 1]`` units with a tanh mean and a
state-independent log-std; evaluation acts with the mean.

Defaults are the paper's for D4RL locomotion: ``expectile = 0.7``, ``beta = 3.0``, weights clipped at 100, Adam
at 3e-4, two hidden layers of 256, tau 0.005, discount 0.99, batch 256, the policy's learning rate decayed to 0
on a cosine over the run (``actor_lr_schedule``), and rewards scaled by ``1000 / (max - min)`` of the dataset's
episode returns (``normalize_rewards``: an offline run hands the agent its dataset through :meth:`IQL.on_dataset`;
the scale is checkpointed, so a resumed run or an online fine-tune learns on the same scale). Q, V and the
advantage, and their metrics, are in scaled reward units.

Metrics returned by :meth:`IQL.update`: ``train/value_loss``, ``train/critic_loss``, ``train/actor_loss``,
``train/q_mean``, ``train/v_mean``, ``train/adv_mean``, ``train/weight_max``, ``train/actor_learning_rate``.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from cardio.agents.base import AgentConfig, require_space
from cardio.agents.critics import Critic, q_values
from cardio.agents.heads import DiagGaussian, from_env_bounds, to_env_bounds
from cardio.agents.networks import flat_dim, mlp, soft_update, to_tensor
from cardio.agents.state import Checkpointable


@dataclass
class IQLConfig(AgentConfig["IQL"]):
    """IQL hyperparameters; the same keys, in the same order, as ``configs/agent/iql.yaml``."""

    zoo_name: ClassVar[str] = "iql"
    """Algorithm key of tuned files, ``configs/zoo/iql/<EnvId>.yaml`` (none shipped)."""
    observation_spaces: ClassVar[tuple[type[gym.Space], ...]] = (gym.spaces.Box,)
    """Observation spaces it takes."""
    action_spaces: ClassVar[tuple[type[gym.Space], ...]] = (gym.spaces.Box,)
    """Action spaces it takes."""

    lr: float = 3e-4
    """Adam learning rate of value, critics and policy."""
    gamma: float = 0.99
    """Discount per step."""
    tau: float = 0.005
    """Polyak coefficient of the target critics, updated after every gradient step."""
    hidden_sizes: tuple[int, ...] = (256, 256)
    """Hidden widths (ReLU) of the value, each critic and the policy."""
    n_critics: int = 2
    """Critics whose minimum (of the targets) the value and the advantage read."""
    expectile: float = 0.7
    """tau of the value's expectile loss: 0.5 is the mean of Q over the data's actions, towards 1 its maximum."""
    beta: float = 3.0
    """Inverse temperature of the advantage weights ``exp(beta * A)``."""
    max_weight: float = 100.0
    """Clip of the advantage weights (w_max)."""
    actor_lr_schedule: str = "cosine"
    """Policy learning rate over the run: ``cosine`` (``lr * (1 + cos(pi * t / total_steps)) / 2``, the paper's) or
    ``constant``; the value and critics keep ``lr``."""
    normalize_rewards: bool = True
    """Scale rewards by ``1000 / (max - min)`` of the dataset's episode returns (the paper's for locomotion;
    False, or no dataset, or all returns equal: unscaled)."""

    def agent_class(self) -> type[IQL]:
        return IQL


def expectile_loss(diff: torch.Tensor, expectile: float) -> torch.Tensor:
    """Mean of ``|expectile - 1(diff < 0)| * diff^2``, ``diff = target - prediction``: positive errors (target above
    the prediction) weigh ``expectile``, negative ones ``1 - expectile``."""
    weight = torch.where(diff < 0, 1.0 - expectile, expectile)
    return (weight * diff.pow(2)).mean()


class GaussianPolicy(nn.Module):
    """``obs [B, D] -> DiagGaussian`` with mean ``tanh(f(s))`` in ``[-1, 1]`` and a learnt state-independent log-std."""

    def __init__(self, obs_dim: int, hidden_sizes: tuple[int, ...], action_dim: int) -> None:
        super().__init__()
        self.mean = nn.Sequential(mlp(obs_dim, hidden_sizes, action_dim), nn.Tanh())
        self.log_std = nn.Parameter(torch.zeros(action_dim))

    def forward(self, obs: torch.Tensor) -> DiagGaussian:
        return DiagGaussian(self.mean(obs), self.log_std.clamp(-5.0, 2.0))


ACTOR_LR_SCHEDULES = ("cosine", "constant")


class IQL(Checkpointable):
    """Implicit Q-learning for Box actions; see the module docstring for the three losses and the metrics."""

    checkpointed = (
        "reward_scale",
        "actor_lr",
        "value",
        "critics",
        "target_critics",
        "policy",
        "value_optimizer",
        "critic_optimizer",
        "policy_optimizer",
        "rng",
    )

    def __init__(
        self,
        observation_space: gym.Space,
        action_space: gym.Space,
        config: IQLConfig | None = None,
        *,
        device: str = "cpu",
        seed: int | None = None,
        env_id: str | None = None,
    ) -> None:
        require_space("IQL", "action", action_space, IQLConfig.action_spaces, env_id)
        require_space("IQL", "observation", observation_space, IQLConfig.observation_spaces, env_id)
        self.config = c = config or IQLConfig()
        if c.actor_lr_schedule not in ACTOR_LR_SCHEDULES:
            schedule = c.actor_lr_schedule
            raise ValueError(f"agent.actor_lr_schedule must be one of {ACTOR_LR_SCHEDULES}, got {schedule!r}")
        self.device = dev = torch.device(device)
        self.rng = np.random.default_rng(seed)  # unused by the maths; kept so every agent checkpoints a generator
        obs_dim, action_dim = flat_dim(observation_space), flat_dim(action_space)
        self.action_shape: tuple[int, ...] = tuple(action_space.shape or ())
        self.low = to_tensor(action_space.low, dev).flatten()  # type: ignore[attr-defined]
        self.high = to_tensor(action_space.high, dev).flatten()  # type: ignore[attr-defined]
        self.value = mlp(obs_dim, c.hidden_sizes, 1).to(dev)
        self.critics = nn.ModuleList(Critic(observation_space, action_dim, c.hidden_sizes) for _ in range(c.n_critics))
        self.critics.to(dev)
        self.target_critics = copy.deepcopy(self.critics).requires_grad_(False)
        self.policy = GaussianPolicy(obs_dim, c.hidden_sizes, action_dim).to(dev)
        # fused: one kernel per optimiser step instead of a loop over tensors (about 3x cheaper on CPU)
        self.value_optimizer = torch.optim.Adam(self.value.parameters(), lr=c.lr, fused=True)
        self.critic_optimizer = torch.optim.Adam(self.critics.parameters(), lr=c.lr, fused=True)
        self.policy_optimizer = torch.optim.Adam(self.policy.parameters(), lr=c.lr, fused=True)
        self.reward_scale = 1.0  # set from the dataset by on_dataset
        self.actor_lr = c.lr  # the scheduled policy learning rate now

    def on_dataset(self, data: Any) -> None:
        """Take the reward scale from an offline run's dataset (``cardio.datasets.minari.OfflineData``, read:
        ``episode_returns``): ``1000 / (max - min)`` of its episode returns under ``normalize_rewards``."""
        returns = np.asarray(data.episode_returns, dtype=np.float64)
        spread = float(returns.max() - returns.min()) if len(returns) else 0.0
        self.reward_scale = 1000.0 / spread if self.config.normalize_rewards and spread > 0 else 1.0

    def on_progress(self, updates: int, total_steps: int) -> None:
        """The policy's learning rate at ``updates`` of ``total_steps`` (cosine decay to 0, or constant)."""
        c = self.config
        if c.actor_lr_schedule == "cosine":
            self.actor_lr = c.lr * 0.5 * (1.0 + math.cos(math.pi * min(updates / max(total_steps, 1), 1.0)))
        for group in self.policy_optimizer.param_groups:
            group["lr"] = self.actor_lr

    def act(self, obs: np.ndarray, explore: bool) -> tuple[np.ndarray, dict[str, Any]]:
        """The policy's mean (``explore``: a sample) in the env's bounds."""
        with torch.no_grad():
            dist = self.policy(to_tensor(obs, self.device).flatten(1))
            action = (dist.sample() if explore else dist.mode()).clamp(-1.0, 1.0)
            action = to_env_bounds(action, self.low, self.high)
        return action.cpu().numpy().astype(np.float32).reshape(len(obs), *self.action_shape), {}

    def update(self, batch: dict[str, Any]) -> dict[str, Any]:
        """One step of value, critics and policy on a ``[B, ...]`` batch, then the soft target update."""
        c, dev = self.config, self.device
        obs = to_tensor(batch["obs"], dev).flatten(1)
        next_obs = to_tensor(batch["next_obs"], dev).flatten(1)
        action = from_env_bounds(to_tensor(batch["action"], dev).flatten(1), self.low, self.high)
        reward = to_tensor(batch["reward"], dev) * self.reward_scale
        not_terminal = 1.0 - to_tensor(batch["terminated"], dev)
        discount = to_tensor(batch["discount"], dev) if "discount" in batch else c.gamma

        # Value: the expectile of the target critics' Q over the dataset's actions.
        with torch.no_grad():
            target_q = q_values(self.target_critics, obs, action).min(dim=0).values  # [B]
        v = self.value(obs).squeeze(1)  # [B]
        value_loss = expectile_loss(target_q - v, c.expectile)
        self.value_optimizer.zero_grad(set_to_none=True)
        value_loss.backward()
        self.value_optimizer.step()
        # Critics: TD target from V(s'), never from Q at an unseen action.
        with torch.no_grad():
            td_target = reward + discount * not_terminal * self.value(next_obs).squeeze(1)
        q = q_values(self.critics, obs, action)  # [n_critics, B]
        critic_loss = ((q - td_target) ** 2).mean(dim=1).sum()
        self.critic_optimizer.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_optimizer.step()
        # Policy: advantage-weighted log-likelihood of the dataset's actions, weights clipped at max_weight.
        with torch.no_grad():
            advantage = target_q - v.detach()
            weight = torch.exp(c.beta * advantage).clamp(max=c.max_weight)
        actor_loss = -(weight * self.policy(obs).log_prob(action)).mean()
        self.policy_optimizer.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.policy_optimizer.step()
        # Soft target update.
        soft_update(self.target_critics, self.critics, c.tau)

        return {
            "train/value_loss": value_loss.item(),
            "train/critic_loss": critic_loss.item(),
            "train/actor_loss": actor_loss.item(),
            "train/q_mean": q[0].mean().item(),
            "train/v_mean": v.mean().item(),
            "train/adv_mean": advantage.mean().item(),
            "train/weight_max": weight.max().item(),
            "train/actor_learning_rate": self.actor_lr,
        }

"""A2C: synchronous advantage actor-critic, one gradient step per rollout, for Discrete and Box actions.

Mnih et al. 2016, "Asynchronous Methods for Deep Reinforcement Learning" (arXiv:1602.01783), in its
synchronous form; advantages by GAE (:func:`cardio.returns.gae`; ``gae_lambda = 1`` gives the paper's
n-step returns, truncated episodes bootstrapped from their true final observation). Defaults are SB3's A2C
defaults (RMSprop, ``n_steps = 5`` in ``configs/runner``); rl-zoo values per env live in
``configs/zoo/a2c/<EnvId>.yaml``.

Metrics returned by :meth:`A2C.update` (SB3's names): ``train/loss``, ``train/policy_loss``,
``train/value_loss``, ``train/entropy_loss``, ``train/explained_variance``, ``train/learning_rate``,
``train/std`` (Box only).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F

from cardio.agents.actor_critic import ActorCritic
from cardio.agents.base import require_space
from cardio.agents.configs import A2CConfig  # the knobs, torch-free; re-exported here
from cardio.agents.heads import NoiseResampler, StateDependentNoiseHead
from cardio.agents.networks import (
    RMSpropTFLike,
    check_lr_schedule,
    obs_batch_size,
    obs_flatten,
    obs_to_tensor,
    to_tensor,
)
from cardio.agents.state import Checkpointable
from cardio.returns import explained_variance, gae


class A2C(Checkpointable):
    """A2C agent; see the module docstring for the paper and metric names."""

    checkpointed = ("net", "optimizer", "progress_remaining")

    def __init__(
        self,
        observation_space: gym.Space,
        action_space: gym.Space,
        config: A2CConfig | None = None,
        *,
        device: str = "cpu",
        seed: int | None = None,
        env_id: str | None = None,
    ) -> None:
        require_space("A2C", "action", action_space, A2CConfig.action_spaces, env_id)
        require_space("A2C", "observation", observation_space, A2CConfig.observation_spaces, env_id)
        self.config = c = config or A2CConfig()
        check_lr_schedule(c.lr_schedule)
        self.device = torch.device(device)
        self.net = ActorCritic(
            observation_space, action_space, c.hidden_sizes, c.activation, c.ortho_init, c.log_std_init, c.share_torso,
            c.vf_hidden_sizes, c.use_sde,
        ).to(self.device)  # fmt: skip
        head = self.net.pi_head
        self.sde = NoiseResampler(head, c.sde_sample_freq) if isinstance(head, StateDependentNoiseHead) else None
        self.optimizer: torch.optim.Optimizer
        if c.use_rms_prop and c.rms_prop_tf_like:
            self.optimizer = RMSpropTFLike(self.net.parameters(), lr=c.lr, alpha=c.rms_prop_alpha, eps=c.rms_prop_eps)
        elif c.use_rms_prop:
            self.optimizer = torch.optim.RMSprop(
                self.net.parameters(), lr=c.lr, alpha=c.rms_prop_alpha, eps=c.rms_prop_eps
            )
        else:
            self.optimizer = torch.optim.Adam(self.net.parameters(), lr=c.lr, eps=c.rms_prop_eps, fused=True)
        self.progress_remaining = 1.0  # 1 at the start of training, 0 at total_steps

    def on_progress(self, env_steps: int, total_steps: int) -> None:
        """The linear learning-rate schedule is a function of the fraction of ``total_steps`` still to go."""
        self.progress_remaining = max(1.0 - env_steps / max(total_steps, 1), 0.0)

    def act(self, obs: np.ndarray, explore: bool) -> tuple[np.ndarray, dict[str, Any]]:
        """Sampled actions with ``log_prob`` and ``value`` extras; the policy's mode when not exploring."""
        if explore and self.sde is not None:
            self.sde.before_act(obs_batch_size(obs))
        return self.net.act(obs, explore, self.device)

    def update(self, rollout: dict[str, Any]) -> dict[str, float]:
        """One gradient step on the whole ``[T, N]`` rollout."""
        c, dev = self.config, self.device
        T, N = rollout["reward"].shape
        lr = c.lr * self.progress_remaining if c.lr_schedule == "linear" else c.lr
        for group in self.optimizer.param_groups:
            group["lr"] = lr

        # Advantages and value targets; truncated episodes bootstrap from V(true final obs).
        with torch.no_grad():
            next_value = self.net.value(obs_flatten(obs_to_tensor(rollout["next_obs"], dev))).reshape(T, N)
        advantages, returns = gae(
            rollout["reward"], rollout["value"], next_value.cpu().numpy(),
            rollout["terminated"], rollout["truncated"], c.gamma, c.gae_lambda,
        )  # fmt: skip
        b_obs = obs_flatten(obs_to_tensor(rollout["obs"], dev))  # [T*N, ...]
        b_action = to_tensor(rollout.get("raw_action", rollout["action"]), dev).flatten(0, 1)
        b_adv = to_tensor(advantages, dev).reshape(T * N)
        b_ret = to_tensor(returns, dev).reshape(T * N)
        if c.normalize_advantage:
            b_adv = (b_adv - b_adv.mean()) / (b_adv.std() + 1e-8)

        # Policy gradient with the advantage as baseline-corrected return; the critic regresses on returns.
        log_prob, entropy, value = self.net.evaluate(b_obs, b_action)
        policy_loss = -(b_adv * log_prob).mean()
        value_loss = F.mse_loss(value, b_ret)
        entropy_loss = -entropy.mean()
        loss = policy_loss + c.ent_coef * entropy_loss + c.vf_coef * value_loss
        # Clipped optimiser step.
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.net.parameters(), c.max_grad_norm, foreach=True)
        self.optimizer.step()

        metrics = {
            "train/loss": loss.item(),
            "train/policy_loss": policy_loss.item(),
            "train/value_loss": value_loss.item(),
            "train/entropy_loss": entropy_loss.item(),
            "train/explained_variance": explained_variance(rollout["value"], returns),
            "train/learning_rate": lr,
        }
        log_std = getattr(self.net.pi_head, "log_std", None)
        if log_std is not None:
            metrics["train/std"] = log_std.exp().mean().item()
        if self.sde is not None:  # the next rollout explores with fresh gSDE matrices
            self.sde.new_rollout()
        return metrics

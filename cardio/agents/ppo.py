"""PPO: proximal policy optimisation with the clipped surrogate objective, for Discrete and Box actions.

Schulman et al. 2017, "Proximal Policy Optimization Algorithms" (arXiv:1707.06347); advantages by GAE
(:func:`cardio.returns.gae`, truncated episodes bootstrapped from their true final observation). Defaults are
SB3's PPO defaults; the rl-zoo values per env live in ``configs/zoo/ppo/<EnvId>.yaml``. The rollout length
(``n_steps``) belongs to the runner (``runner.schedule.n_steps``); epochs and minibatches are the agent's.

Metrics returned by :meth:`PPO.update` (SB3's names): ``train/loss``, ``train/policy_gradient_loss``,
``train/value_loss``, ``train/entropy_loss``, ``train/approx_kl``, ``train/clip_fraction``,
``train/explained_variance``, ``train/learning_rate``, ``train/clip_range``, ``train/std`` (Box only).
"""

from __future__ import annotations

import warnings
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F

from cardio.agents.actor_critic import ActorCritic
from cardio.agents.base import require_space
from cardio.agents.configs import PPOConfig  # the knobs, shared with the JAX twin; re-exported here
from cardio.agents.heads import NoiseResampler, StateDependentNoiseHead
from cardio.agents.networks import obs_batch_size, obs_flatten, obs_index, obs_to_tensor, to_tensor
from cardio.agents.state import Checkpointable
from cardio.returns import explained_variance, gae


class PPO(Checkpointable):
    """PPO agent; see the module docstring for the paper and metric names."""

    checkpointed = ("net", "optimizer", "progress_remaining", "rng")

    def __init__(
        self,
        observation_space: gym.Space,
        action_space: gym.Space,
        config: PPOConfig | None = None,
        *,
        device: str = "cpu",
        seed: int | None = None,
        env_id: str | None = None,
    ) -> None:
        require_space("PPO", "action", action_space, PPOConfig.action_spaces, env_id)
        require_space("PPO", "observation", observation_space, PPOConfig.observation_spaces, env_id)
        self.config = c = config or PPOConfig()
        c.check_schedules()
        self.device = torch.device(device)
        self.rng = np.random.default_rng(seed)  # minibatch shuffles
        self.net = ActorCritic(
            observation_space, action_space, c.hidden_sizes, c.activation, c.ortho_init, c.log_std_init, c.share_torso,
            c.vf_hidden_sizes, c.use_sde,
        ).to(self.device)  # fmt: skip
        head = self.net.pi_head
        self.sde = NoiseResampler(head, c.sde_sample_freq) if isinstance(head, StateDependentNoiseHead) else None
        self._params = list(self.net.parameters())  # walked once: the module tree is not, every minibatch
        self.optimizer = torch.optim.Adam(self._params, lr=c.lr, eps=1e-5, fused=True)  # fused: one kernel
        self.progress_remaining = 1.0  # 1 at the start of training, 0 at total_steps
        self._checked_batch = False  # the batch-size check looks at the first rollout (the last may be cut short)

    def on_progress(self, env_steps: int, total_steps: int) -> None:
        """Linear schedules are functions of the fraction of ``total_steps`` still to go."""
        self.progress_remaining = max(1.0 - env_steps / max(total_steps, 1), 0.0)

    def _scheduled(self, value: float, schedule: str) -> float:
        return value * self.progress_remaining if schedule == "linear" else value

    def act(self, obs: np.ndarray, explore: bool) -> tuple[np.ndarray, dict[str, Any]]:
        """Sampled actions with ``log_prob`` and ``value`` extras; the policy's mode when not exploring."""
        if explore and self.sde is not None:
            self.sde.before_act(obs_batch_size(obs))
        return self.net.act(obs, explore, self.device)

    def update(self, rollout: dict[str, Any]) -> dict[str, float]:
        """``n_epochs`` passes of shuffled minibatches over a ``[T, N]`` rollout."""
        c, dev = self.config, self.device
        T, N = rollout["reward"].shape
        size = T * N
        uneven = None if self._checked_batch else c.uneven_minibatches(T, N)
        if uneven is not None:
            warnings.warn(uneven, stacklevel=2)
        self._checked_batch = True
        lr = self._scheduled(c.lr, c.lr_schedule)
        clip = self._scheduled(c.clip_range, c.clip_range_schedule)
        for group in self.optimizer.param_groups:
            group["lr"] = lr

        # Advantages and value targets; truncated episodes bootstrap from V(true final obs).
        with torch.no_grad():
            next_value = self.net.value(obs_flatten(obs_to_tensor(rollout["next_obs"], dev))).reshape(T, N)
        advantages, returns = gae(
            rollout["reward"], rollout["value"], next_value.cpu().numpy(),
            rollout["terminated"], rollout["truncated"], c.gamma, c.gae_lambda,
        )  # fmt: skip
        action = rollout.get("raw_action", rollout["action"])
        b_obs = obs_flatten(obs_to_tensor(rollout["obs"], dev))  # [T*N, ...]
        b_action = to_tensor(action, dev).flatten(0, 1)
        b_log_prob = to_tensor(rollout["log_prob"], dev).reshape(size)
        b_value = to_tensor(rollout["value"], dev).reshape(size)
        b_adv = to_tensor(advantages, dev).reshape(size)
        b_ret = to_tensor(returns, dev).reshape(size)

        sums: dict[str, float] = {}
        n_minibatches = 0
        for _ in range(c.n_epochs):
            for mb in torch.as_tensor(self.rng.permutation(size), device=dev).split(c.batch_size):
                log_prob, entropy, value = self.net.evaluate(obs_index(b_obs, mb), b_action[mb])
                mb_adv = b_adv[mb]
                if c.normalize_advantage and len(mb) > 1:
                    mb_adv = (mb_adv - mb_adv.mean()) / (mb_adv.std() + 1e-8)
                # Clipped surrogate objective.
                log_ratio = log_prob - b_log_prob[mb]
                ratio = log_ratio.exp()
                pg_loss = -torch.min(mb_adv * ratio, mb_adv * ratio.clamp(1 - clip, 1 + clip)).mean()
                # Value loss, optionally clipped around the rollout's values.
                if c.clip_range_vf is not None:
                    value = b_value[mb] + (value - b_value[mb]).clamp(-c.clip_range_vf, c.clip_range_vf)
                value_loss = F.mse_loss(value, b_ret[mb])
                entropy_loss = -entropy.mean()
                loss = pg_loss + c.ent_coef * entropy_loss + c.vf_coef * value_loss
                # Clipped optimiser step.
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self._params, c.max_grad_norm, foreach=True)
                self.optimizer.step()
                # Diagnostics: approx. KL (Schulman's k3 estimator) and the share of clipped ratios.
                with torch.no_grad():
                    stats = {
                        "train/loss": loss,
                        "train/policy_gradient_loss": pg_loss,
                        "train/value_loss": value_loss,
                        "train/entropy_loss": entropy_loss,
                        "train/approx_kl": ((ratio - 1) - log_ratio).mean(),
                        "train/clip_fraction": ((ratio - 1).abs() > clip).float().mean(),
                    }
                for key, val in stats.items():
                    sums[key] = sums.get(key, 0.0) + float(val.detach())
                n_minibatches += 1

        metrics = {key: val / n_minibatches for key, val in sums.items()}
        metrics["train/explained_variance"] = explained_variance(rollout["value"], returns)
        metrics["train/learning_rate"] = lr
        if self.sde is not None:  # the next rollout explores with fresh gSDE matrices
            self.sde.new_rollout()
        metrics["train/clip_range"] = clip
        log_std = getattr(self.net.pi_head, "log_std", None)
        if log_std is not None:
            metrics["train/std"] = log_std.exp().mean().item()
        return metrics

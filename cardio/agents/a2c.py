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

from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F

from cardio.agents.actor_critic import ActorCritic
from cardio.agents.base import AgentConfig, require_space
from cardio.agents.heads import NoiseResampler, StateDependentNoiseHead
from cardio.agents.networks import (
    OBSERVATION_SPACES,
    RMSpropTFLike,
    obs_batch_size,
    obs_flatten,
    obs_to_tensor,
    to_tensor,
)
from cardio.agents.state import Checkpointable
from cardio.returns import explained_variance, gae


@dataclass
class A2CConfig(AgentConfig["A2C"]):
    """A2C hyperparameters; the same keys, in the same order, as ``configs/agent/a2c.yaml``."""

    zoo_name: ClassVar[str] = "a2c"
    """Tuned hyperparameters live in ``configs/zoo/a2c/<EnvId>.yaml``."""
    observation_spaces: ClassVar[tuple[type[gym.Space], ...]] = OBSERVATION_SPACES
    """Observation spaces it takes."""
    action_spaces: ClassVar[tuple[type[gym.Space], ...]] = (gym.spaces.Discrete, gym.spaces.Box)
    """Action spaces it takes."""

    lr: float = 7e-4
    """Learning rate (the initial one under a linear schedule)."""
    lr_schedule: str = "constant"
    """``constant`` or ``linear`` (decays to 0 at ``total_steps``)."""
    gamma: float = 0.99
    """Discount per env step."""
    gae_lambda: float = 1.0
    """GAE lambda: 1 = n-step returns as in the paper, 0 = one-step TD."""
    normalize_advantage: bool = False
    """Standardise advantages over the rollout."""
    ent_coef: float = 0.0
    """Weight of the entropy bonus."""
    vf_coef: float = 0.5
    """Weight of the value loss."""
    max_grad_norm: float = 0.5
    """Gradient-norm clip of each optimiser step."""
    use_rms_prop: bool = True
    """RMSprop (as in the paper and SB3) instead of Adam."""
    rms_prop_eps: float = 1e-5
    """Epsilon of RMSprop (and of Adam)."""
    rms_prop_alpha: float = 0.99
    """Smoothing constant of RMSprop's squared-gradient average."""
    rms_prop_tf_like: bool = False
    """TensorFlow's RMSprop (epsilon inside the square root, average starting at 1): SB3's ``RMSpropTFLike``,
    which rl-zoo's Atari A2C uses."""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """Hidden widths of the actor MLP, and of the critic's unless ``vf_hidden_sizes`` (images: a Nature-CNN)."""
    vf_hidden_sizes: tuple[int, ...] | None = None
    """The critic's own hidden widths (rl-zoo's ``net_arch: {pi: [...], vf: [...]}``); ``None``: as the actor's."""
    activation: str = "tanh"
    """Activation of the MLPs: tanh, relu, elu or gelu."""
    ortho_init: bool = True
    """Orthogonal initialisation as in SB3 (gains sqrt(2) torso, 0.01 policy, 1 value)."""
    log_std_init: float = 0.0
    """Initial log standard deviation of the Gaussian policy (Box actions)."""
    share_torso: bool = False
    """Actor and critic share one torso (SB3 does for CNNs)."""
    use_sde: bool = False
    """gSDE exploration for Box actions (``cardio/agents/heads.py``): noise ``z(s) @ W`` with ``W`` held fixed."""
    sde_sample_freq: int = -1
    """Vector steps between fresh gSDE noise matrices within a rollout; -1: only at each rollout's start."""

    def agent_class(self) -> type[A2C]:
        return A2C


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
        if c.lr_schedule not in ("constant", "linear"):
            raise ValueError(f"agent.lr_schedule must be 'constant' or 'linear', got {c.lr_schedule!r}")
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

"""SAC in JAX: the twin of :mod:`cardio.agents.sac`, with the same config, maths and metric names.

Haarnoja et al. 2018, "Soft Actor-Critic Algorithms and Applications" (arXiv:1812.05905). Defaults are SB3's SAC
defaults; the rl-zoo values per env apply to both twins (``SACConfig.zoo_name = "sac"``). The policy is a
tanh-squashed Gaussian in ``[-1, 1]``, rescaled to the env's bounds in :meth:`SACJax.act`; stored actions are
mapped back for the critics. The ``n_critics`` critics are one parameter pytree with a leading critic axis,
evaluated together with ``vmap``.

State: :class:`SACState` (actor, critics, target critics, ``log_alpha``, their three Adam states, and ``key``:
the policy's samples). One jitted pure function makes the alpha, critic and actor steps and the soft target
update, in the torch twin's order.

Metrics returned by :meth:`SACJax.update`: ``train/actor_loss``, ``train/critic_loss`` (sum of the twin MSEs),
``train/ent_coef`` (alpha), ``train/ent_coef_loss`` (auto tuning only), ``train/q_mean`` (first critic on the
batch), ``train/entropy`` (minus the mean log-prob of fresh policy actions), ``train/learning_rate``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Any, NamedTuple

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import optax

from cardio.agents.configs import SACConfig
from cardio.agents.jax.networks import (
    adam,
    apply,
    jit_once,
    mlp,
    mlp_init,
    new_rngs,
    optimiser_state,
    polyak,
    stacked,
    to_jax,
    to_numpy,
)
from cardio.agents.jax.twin import FlatObservations, OffPolicyTwin, check_twin


@dataclass
class SACJaxConfig(FlatObservations, SACConfig):
    """:class:`~cardio.agents.configs.SACConfig`'s knobs (``configs/agent/sac_jax.yaml``), built as the JAX twin."""

    def agent_class(self) -> type[SACJax]:
        return SACJax


class SACState(NamedTuple):
    """Everything that changes during training, as jax arrays."""

    actor: Any
    critics: Any  # every leaf has a leading [n_critics] axis
    target_critics: Any
    log_alpha: Any
    actor_opt: Any
    critic_opt: Any
    alpha_opt: Any
    key: Any  # uint32 [2]: numpy until the first jitted call returns it as a jax array


METRICS = ("train/actor_loss", "train/critic_loss", "train/ent_coef", "train/q_mean", "train/entropy")
LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0  # SB3's clamp of the policy's log standard deviation
UNSUPPORTED = ("lr_schedule", "qf_hidden_sizes", "activation", "use_sde", "use_sde_at_warmup")  # torch twin's only


def policy(actor: Any, obs: jax.Array, key: jax.Array, deterministic: bool = False) -> tuple[jax.Array, jax.Array]:
    """``(action [B, A] in [-1, 1], log_prob [B])`` of the tanh-squashed Gaussian (see
    :class:`cardio.agents.heads.SquashedGaussianHead` for the change-of-variables term)."""
    h = mlp(actor["torso"], obs, activate_last=True)
    mean = mlp(actor["mean"], h)
    log_std = jnp.clip(mlp(actor["log_std"], h), LOG_STD_MIN, LOG_STD_MAX)
    std = jnp.exp(log_std)
    u = mean if deterministic else mean + std * jax.random.normal(key, mean.shape)  # reparameterised [B, A]
    gaussian_log_prob = (-0.5 * ((u - mean) / std) ** 2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
    log_det = (2.0 * (math.log(2.0) - u - jax.nn.softplus(-2.0 * u))).sum(-1)  # sum log(1 - tanh(u)^2)
    return jnp.tanh(u), gaussian_log_prob - log_det


def q_values(critics: Any, obs: jax.Array, action: jax.Array) -> jax.Array:
    """``[n_critics, B]`` Q-values of ``(obs, action)`` pairs, action in ``[-1, 1]``."""
    pair = jnp.concatenate([obs, action], axis=1)
    return jax.vmap(mlp, in_axes=(0, None))(critics, pair)[..., 0]


def act(
    actor: Any, key: jax.Array, obs: jax.Array, low: jax.Array, high: jax.Array, *, explore: bool
) -> tuple[jax.Array, jax.Array]:
    """Sampled actions when exploring, ``tanh(mean)`` otherwise, in the env's bounds ``[low, high]``; takes and
    returns only what it needs (``actor``, ``key``): every array through a jit boundary costs."""
    key, k_sample = jax.random.split(key)
    action, _ = policy(actor, obs.reshape(len(obs), -1), k_sample, deterministic=not explore)
    return low + 0.5 * (action + 1.0) * (high - low), key


def update(
    state: SACState,
    batch: dict[str, jax.Array],
    low: jax.Array,
    high: jax.Array,
    *,
    tx: optax.GradientTransformation,
    config: SACConfig,
    auto_alpha: bool,
    target_entropy: float,
) -> tuple[SACState, jax.Array, jax.Array]:
    """One gradient step of alpha, critics and actor on a ``[B, ...]`` batch, then the soft target update.
    Returns the state, the :data:`METRICS` values (and the alpha loss when it is learnt) and the absolute TD errors
    of the first critic."""
    c = config
    obs = batch["obs"].reshape(len(batch["obs"]), -1)
    next_obs = batch["next_obs"].reshape(len(batch["next_obs"]), -1)
    action = 2.0 * (batch["action"].reshape(len(obs), -1) - low) / (high - low) - 1.0
    not_terminal = 1.0 - batch["terminated"].astype(jnp.float32)
    discount = batch.get("discount", c.gamma)
    key, k_pi, k_next = jax.random.split(state.key, 3)

    # Entropy coefficient: raise alpha when the policy's entropy is below the target, lower it above.
    _, log_prob = policy(state.actor, obs, k_pi)
    alpha = jnp.exp(state.log_alpha)
    log_alpha, alpha_opt, alpha_loss = state.log_alpha, state.alpha_opt, None
    if auto_alpha:
        entropy_gap = jax.lax.stop_gradient(log_prob + target_entropy)
        alpha_loss, alpha_grad = jax.value_and_grad(lambda la: -(la * entropy_gap).mean())(log_alpha)
        log_alpha, alpha_opt = apply(tx, log_alpha, alpha_opt, alpha_grad, c.lr)
    # Soft TD target without grad: min over target critics minus alpha * log-prob of the next action.
    next_action, next_log_prob = policy(state.actor, next_obs, k_next)
    next_q = q_values(state.target_critics, next_obs, next_action).min(axis=0)
    td_target = jax.lax.stop_gradient(batch["reward"] + discount * not_terminal * (next_q - alpha * next_log_prob))

    # Critic loss: MSE of every critic, importance-weighted under prioritized replay.
    def critic_loss_fn(critics: Any) -> tuple[jax.Array, jax.Array]:
        q = q_values(critics, obs, action)  # [n_critics, B]
        return 0.5 * ((q - td_target) ** 2 * batch.get("weight", 1.0)).mean(axis=1).sum(), q

    (critic_loss, q), critic_grads = jax.value_and_grad(critic_loss_fn, has_aux=True)(state.critics)
    critics, critic_opt = apply(tx, state.critics, state.critic_opt, critic_grads, c.lr)

    # Actor loss: maximise min-Q (of the updated critics) minus alpha * log-prob, on the same policy sample.
    def actor_loss_fn(actor: Any) -> tuple[jax.Array, jax.Array]:
        pi_action, pi_log_prob = policy(actor, obs, k_pi)
        pi_q = q_values(critics, obs, pi_action).min(axis=0)
        return (alpha * pi_log_prob - pi_q).mean(), pi_log_prob

    (actor_loss, log_prob), actor_grads = jax.value_and_grad(actor_loss_fn, has_aux=True)(state.actor)
    actor, actor_opt = apply(tx, state.actor, state.actor_opt, actor_grads, c.lr)
    # Soft target update.
    target_critics = polyak(state.target_critics, critics, c.tau)

    new = SACState(actor, critics, target_critics, log_alpha, actor_opt, critic_opt, alpha_opt, key)
    metrics = [actor_loss, critic_loss, alpha, q[0].mean(), -log_prob.mean()] + ([alpha_loss] if auto_alpha else [])
    return new, jnp.stack(metrics), jnp.abs(td_target - q[0])


class SACJax(OffPolicyTwin):
    """Soft actor-critic agent in JAX; see the module docstring for the paper, state and metric names. ``act`` and
    ``update`` (one jitted call of the functions above each) are :class:`OffPolicyTwin`'s."""

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
        self.config = c = config or SACConfig()
        obs_dim = check_twin("SAC", observation_space, action_space, (gym.spaces.Box,), c, UNSUPPORTED, env_id)
        action_dim = int(np.prod(action_space.shape))  # type: ignore[arg-type]
        self.action_shape: tuple[int, ...] = tuple(action_space.shape or ())
        self.low = np.asarray(action_space.low, np.float32).flatten()  # type: ignore[attr-defined]
        self.high = np.asarray(action_space.high, np.float32).flatten()  # type: ignore[attr-defined]
        # numpy state until the first jitted call: building the agent compiles nothing (networks.new_rngs)
        key, rng = new_rngs(seed)
        features_dim = c.hidden_sizes[-1] if c.hidden_sizes else obs_dim
        actor = {
            "torso": mlp_init(rng, (obs_dim, *c.hidden_sizes)),
            "mean": mlp_init(rng, (features_dim, action_dim)),
            "log_std": mlp_init(rng, (features_dim, action_dim)),
        }
        critic_sizes = (obs_dim + action_dim, *c.hidden_sizes, 1)
        critics = stacked([mlp_init(rng, critic_sizes) for _ in range(c.n_critics)])
        # Entropy coefficient: learnt in log space from an initial value, or fixed.
        target_entropy = -float(action_dim) if c.target_entropy == "auto" else float(c.target_entropy)
        auto_alpha = isinstance(c.ent_coef, str) and c.ent_coef.startswith("auto")
        start = str(c.ent_coef).partition("_")[2]  # "auto_0.1" -> "0.1"
        alpha0 = (float(start) if start else 1.0) if auto_alpha else float(c.ent_coef)
        log_alpha = np.asarray(math.log(alpha0), np.float32)
        self.tx = tx = adam()
        opt_states = optimiser_state(tx, actor), optimiser_state(tx, critics), optimiser_state(tx, log_alpha)
        self.state = SACState(actor, critics, critics, log_alpha, *opt_states, key)
        self.metric_names = METRICS + (("train/ent_coef_loss",) if auto_alpha else ())
        self.act_fn = act
        self.update_fn = partial(update, tx=tx, config=c, auto_alpha=auto_alpha, target_entropy=target_entropy)
        static = (repr(c), obs_dim, action_dim)
        self._act = jit_once(self.act_fn, ("sac.act", *static), static_argnames="explore")
        self._update = jit_once(self.update_fn, ("sac.update", *static))

    def policy_args(self) -> tuple[Any, tuple[Any, ...]]:
        """``act_fn``'s per-seed parameters (the actor), and the arguments every seed shares (the bounds)."""
        return self.state.actor, (self.low, self.high)

    def update_args(self) -> tuple[Any, ...]:
        """``update_fn``'s arguments after the batch, shared by every seed (the action bounds)."""
        return self.low, self.high

    def env_action(self, action: Any, num_envs: int) -> np.ndarray:
        """``act_fn``'s actions for ``num_envs`` envs in the action space's shape."""
        return np.asarray(action).reshape(num_envs, *self.action_shape)

    def extra_metrics(self) -> dict[str, float]:
        """Metrics of Python-side schedules: the learning rate (constant: ``lr_schedule`` linear is refused)."""
        return {"train/learning_rate": self.config.lr}

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume, as numpy: the state pytree."""
        return {"state": to_numpy(self.state._asdict())}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved.

        Raises:
            KeyError: a part missing from ``state`` (a checkpoint of another agent or another version).
        """
        if "state" not in state:
            raise KeyError(f"{type(self).__name__} checkpoint lacks ['state']; it holds {sorted(state)}")
        self.state = SACState(**to_jax(state["state"]))

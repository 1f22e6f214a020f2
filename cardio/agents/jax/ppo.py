"""PPO in JAX: the twin of :mod:`cardio.agents.ppo`, with the same config, maths and metric names.

Schulman et al. 2017, "Proximal Policy Optimization Algorithms" (arXiv:1707.06347); advantages by GAE
(:func:`cardio.returns.gae`, truncated episodes bootstrapped from their true final observation). Defaults are
SB3's PPO defaults; the rl-zoo values per env apply to both twins (``PPOConfig.zoo_name = "ppo"``). The rollout
length (``n_steps``) belongs to the runner; epochs and minibatches are the agent's.

Networks as in SB3's ``ActorCriticPolicy`` and the torch twin: separate MLP torsos for actor and critic (one with
``share_torso``), orthogonal init (gains sqrt(2) torsos, 0.01 policy head, 1 value head), a categorical head for
Discrete actions and a diagonal Gaussian with a learnt state-independent ``log_std`` for Box actions (sampled
unbounded, clipped for the env, the unclipped sample kept as ``raw_action``). Image observations are refused
(no CNN torso here; ``agent=ppo`` has one).

State: :class:`PPOState` (``params``, ``opt_state``, ``key``: sampling and minibatch shuffles). The whole update,
every epoch and minibatch, is one jitted pure function; the learning rate and clip range are its arguments, so
the linear schedules follow env steps in ``on_progress`` exactly as in the torch twin.

Metrics returned by :meth:`PPOJax.update` (SB3's names): ``train/loss``, ``train/policy_gradient_loss``,
``train/value_loss``, ``train/entropy_loss``, ``train/approx_kl``, ``train/clip_fraction``,
``train/explained_variance``, ``train/learning_rate``, ``train/clip_range``, ``train/std`` (Box only).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar, NamedTuple

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import optax

from cardio.agents.base import require_space
from cardio.agents.configs import PPOConfig, refuse_unsupported
from cardio.agents.jax.networks import (
    ACTIVATIONS,
    adam,
    apply,
    jit_once,
    mlp,
    mlp_init,
    new_rngs,
    optimiser_state,
    to_jax,
    to_numpy,
)
from cardio.returns import explained_variance, gae


@dataclass
class PPOJaxConfig(PPOConfig):
    """:class:`~cardio.agents.configs.PPOConfig`'s knobs (``configs/agent/ppo_jax.yaml``), built as the JAX twin."""

    observation_spaces: ClassVar[tuple[type[gym.Space], ...]] = (gym.spaces.Box, gym.spaces.Discrete)
    """Flat observations only: the torch agent's Dict / Tuple encoders have no JAX twin."""

    def agent_class(self) -> type[PPOJax]:
        return PPOJax


class PPOState(NamedTuple):
    """Everything that changes during training, as jax arrays."""

    params: Any
    opt_state: Any
    key: Any  # uint32 [2]: numpy until the first jitted call returns it as a jax array


METRICS = (
    "train/loss",
    "train/policy_gradient_loss",
    "train/value_loss",
    "train/entropy_loss",
    "train/approx_kl",
    "train/clip_fraction",
)


class Policy(NamedTuple):
    """The static shape of the networks: what the pure functions need besides the parameters."""

    one_hot: int  # Discrete observations: their number of values (0: Box, flattened)
    num_actions: int  # Discrete actions: A (0: Box)
    activation: str
    share_torso: bool


def features(policy: Policy, torso: Any, obs: jax.Array) -> jax.Array:
    """Torso features of ``obs [B, ...]``: one-hot for Discrete observations, flattened otherwise."""
    x = jax.nn.one_hot(obs.reshape(-1), policy.one_hot) if policy.one_hot else obs.reshape(len(obs), -1)
    return mlp(torso, x.astype(jnp.float32), ACTIVATIONS[policy.activation], activate_last=True)


def value(policy: Policy, params: Any, obs: jax.Array) -> jax.Array:
    """``V(obs)``, shape ``[B]``."""
    torso = params["pi_torso"] if policy.share_torso else params["vf_torso"]
    return mlp(params["vf_head"], features(policy, torso, obs))[:, 0]


def distribution(policy: Policy, params: Any, obs: jax.Array) -> jax.Array:
    """Normalised log-probabilities ``[B, A]`` (Discrete) or the Gaussian's mean ``[B, A]`` (Box)."""
    out = mlp(params["pi_head"], features(policy, params["pi_torso"], obs))
    return jax.nn.log_softmax(out) if policy.num_actions else out


def log_prob_entropy(policy: Policy, params: Any, dist: jax.Array, action: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(log_prob [B], entropy [B])`` of stored actions under ``dist`` (see :func:`distribution`)."""
    if policy.num_actions:
        log_prob = jnp.take_along_axis(dist, action.reshape(-1, 1).astype(jnp.int32), axis=1)[:, 0]
        return log_prob, -(jnp.exp(dist) * dist).sum(axis=1)
    log_std = jnp.broadcast_to(params["log_std"], dist.shape)
    z = (action.reshape(dist.shape) - dist) * jnp.exp(-log_std)
    log_prob = (-0.5 * z**2 - log_std - 0.5 * math.log(2 * math.pi)).sum(axis=1)
    return log_prob, (log_std + 0.5 * (1.0 + math.log(2 * math.pi))).sum(axis=1)


def act(
    params: Any, key: jax.Array, obs: jax.Array, *, explore: bool, policy: Policy
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """``(action, log_prob, value, key)``: sampled actions when exploring, the distribution's mode otherwise.
    Takes and returns only what it needs (``params``, ``key``): every array through a jit boundary costs."""
    key, k_sample = jax.random.split(key)
    dist = distribution(policy, params, obs)
    if policy.num_actions:
        action = jax.random.categorical(k_sample, dist) if explore else dist.argmax(axis=1)
    else:
        noise = jnp.exp(params["log_std"]) * jax.random.normal(k_sample, dist.shape)
        action = dist + noise if explore else dist
    log_prob, _ = log_prob_entropy(policy, params, dist, action)
    return action, log_prob, value(policy, params, obs), key


def update(
    state: PPOState,
    data: dict[str, jax.Array],
    lr: jax.Array,
    clip: jax.Array,
    *,
    tx: optax.GradientTransformation,
    config: PPOConfig,
    policy: Policy,
) -> tuple[PPOState, jax.Array]:
    """``n_epochs`` passes of shuffled minibatches over the flattened rollout ``data`` (``obs``, ``action``,
    ``log_prob``, ``value``, ``advantage``, ``return``, each ``[T*N, ...]``); returns the state and the mean
    :data:`METRICS` over minibatches."""
    c = config
    size = len(data["advantage"])

    def minibatch_step(carry: tuple[Any, Any], idx: jax.Array) -> tuple[tuple[Any, Any], jax.Array]:
        params, opt_state = carry
        mb = jax.tree.map(lambda x: x[idx], data)

        def loss_fn(params: Any) -> tuple[jax.Array, jax.Array]:
            dist = distribution(policy, params, mb["obs"])
            log_prob, entropy = log_prob_entropy(policy, params, dist, mb["action"])
            new_value = value(policy, params, mb["obs"])
            adv = mb["advantage"]
            if c.normalize_advantage and len(idx) > 1:  # torch's std is the unbiased one
                adv = (adv - adv.mean()) / (adv.std(ddof=1) + 1e-8)
            # Clipped surrogate objective.
            log_ratio = log_prob - mb["log_prob"]
            ratio = jnp.exp(log_ratio)
            pg_loss = -jnp.minimum(adv * ratio, adv * jnp.clip(ratio, 1 - clip, 1 + clip)).mean()
            # Value loss, optionally clipped around the rollout's values.
            if c.clip_range_vf is not None:
                new_value = mb["value"] + jnp.clip(new_value - mb["value"], -c.clip_range_vf, c.clip_range_vf)
            value_loss = ((new_value - mb["return"]) ** 2).mean()
            entropy_loss = -entropy.mean()
            loss = pg_loss + c.ent_coef * entropy_loss + c.vf_coef * value_loss
            # Diagnostics: approx. KL (Schulman's k3 estimator) and the share of clipped ratios.
            approx_kl = ((ratio - 1) - log_ratio).mean()
            clip_fraction = (jnp.abs(ratio - 1) > clip).mean()
            return loss, jnp.stack([loss, pg_loss, value_loss, entropy_loss, approx_kl, clip_fraction])

        grads, stats = jax.grad(loss_fn, has_aux=True)(params)
        # Clipped optimiser step.
        params, opt_state = apply(tx, params, opt_state, grads, lr)
        return (params, opt_state), jax.lax.stop_gradient(stats)

    def epoch(carry: tuple[Any, Any, jax.Array], _: None) -> tuple[tuple[Any, Any, jax.Array], jax.Array]:
        params, opt_state, key = carry
        key, k_perm = jax.random.split(key)
        perm = jax.random.permutation(k_perm, size)
        n_full = size // c.batch_size
        (params, opt_state), stats = jax.lax.scan(
            minibatch_step, (params, opt_state), perm[: n_full * c.batch_size].reshape(n_full, c.batch_size)
        )
        if size % c.batch_size:  # the runt minibatch at the end of each epoch, as in the torch twin
            (params, opt_state), runt = minibatch_step((params, opt_state), perm[n_full * c.batch_size :])
            stats = jnp.concatenate([stats, runt[None]])
        return (params, opt_state, key), stats

    (params, opt_state, key), stats = jax.lax.scan(epoch, (state.params, state.opt_state, state.key), None, c.n_epochs)
    return PPOState(params, opt_state, key), stats.reshape(-1, len(METRICS)).mean(axis=0)


class PPOJax:
    """PPO agent in JAX; see the module docstring for the paper, state and metric names."""

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
        require_space("PPO", "action", action_space, (gym.spaces.Discrete, gym.spaces.Box), env_id)
        require_space("PPO", "observation", observation_space, (gym.spaces.Box, gym.spaces.Discrete), env_id)
        self.config = c = config or PPOConfig()
        refuse_unsupported(
            c, "PPO (JAX)", ("vf_hidden_sizes", "use_sde", "sde_sample_freq")
        )  # knobs of the torch twin this one lacks
        c.check_schedules()
        if c.activation not in ACTIVATIONS:
            raise ValueError(f"agent.activation must be one of {sorted(ACTIVATIONS)}, got {c.activation!r}")
        if isinstance(observation_space, gym.spaces.Box) and len(observation_space.shape) == 3:
            raise ValueError(
                f"agent=ppo_jax has no CNN torso for the image observations {observation_space} of env "
                f"{env_id or '<unknown>'!r}; use agent=ppo (its Nature-CNN) for pixels"
            )
        discrete_obs = isinstance(observation_space, gym.spaces.Discrete)
        obs_dim = int(observation_space.n if discrete_obs else np.prod(observation_space.shape))  # type: ignore[attr-defined,arg-type]
        self.box = action_space if isinstance(action_space, gym.spaces.Box) else None
        num_actions = 0 if self.box is not None else int(action_space.n)  # type: ignore[attr-defined]
        action_dim = int(np.prod(self.box.shape)) if self.box is not None else num_actions
        self.policy = Policy(obs_dim if discrete_obs else 0, num_actions, c.activation, c.share_torso)

        prng_key, rng = new_rngs(seed)  # numpy state until the first jitted call: building compiles nothing
        torso_sizes = (obs_dim, *c.hidden_sizes)
        gain = (lambda g: [g] * len(torso_sizes)) if c.ortho_init else (lambda g: None)
        features_dim = torso_sizes[-1]
        params: dict[str, Any] = {
            "pi_torso": mlp_init(rng, torso_sizes, gain(math.sqrt(2))),
            "pi_head": mlp_init(rng, (features_dim, action_dim), gain(0.01)),
            "vf_head": mlp_init(rng, (features_dim, 1), gain(1.0)),
        }
        if not c.share_torso:
            params["vf_torso"] = mlp_init(rng, torso_sizes, gain(math.sqrt(2)))
        if self.box is not None:
            params["log_std"] = np.full((action_dim,), float(c.log_std_init), np.float32)
        self.tx = adam(c.max_grad_norm, eps=1e-5)
        self.state = PPOState(params, optimiser_state(self.tx, params), prng_key)
        self.progress_remaining = 1.0  # 1 at the start of training, 0 at total_steps
        self._checked_batch = False  # the batch-size check looks at the first rollout (the last may be cut short)
        self.act_fn = partial(act, policy=self.policy)
        self.update_fn = partial(update, tx=self.tx, config=c, policy=self.policy)
        static = (repr(c), self.policy, obs_dim, action_dim)
        self._act = jit_once(self.act_fn, ("ppo.act", *static), static_argnames="explore")
        self._value = jit_once(partial(value, self.policy), ("ppo.value", *static))
        self._update = jit_once(self.update_fn, ("ppo.update", *static))

    def on_progress(self, env_steps: int, total_steps: int) -> None:
        """Linear schedules are functions of the fraction of ``total_steps`` still to go."""
        self.progress_remaining = max(1.0 - env_steps / max(total_steps, 1), 0.0)

    def _scheduled(self, value: float, schedule: str) -> float:
        return value * self.progress_remaining if schedule == "linear" else value

    def act(self, obs: np.ndarray, explore: bool) -> tuple[np.ndarray, dict[str, Any]]:
        """Sampled actions with ``log_prob`` and ``value`` extras; the policy's mode when not exploring."""
        action, log_prob, value, key = self._act(self.state.params, self.state.key, np.asarray(obs), explore=explore)
        self.state = self.state._replace(key=key)
        extras: dict[str, Any] = {"log_prob": np.asarray(log_prob), "value": np.asarray(value)} if explore else {}
        if self.box is None:
            return np.asarray(action), extras
        raw = np.asarray(action).reshape(len(obs), *self.box.shape)
        if explore:
            extras["raw_action"] = raw
        return np.clip(raw, self.box.low, self.box.high).astype(self.box.dtype), extras

    def update(self, rollout: dict[str, Any]) -> dict[str, float]:
        """``n_epochs`` passes of shuffled minibatches over a ``[T, N]`` rollout."""
        c = self.config
        T, N = rollout["reward"].shape
        size = T * N
        uneven = None if self._checked_batch else c.uneven_minibatches(T, N)
        if uneven is not None:
            warnings.warn(uneven, stacklevel=2)
        self._checked_batch = True  # the first rollout only: a run's last one may be cut short
        lr = self._scheduled(c.lr, c.lr_schedule)
        clip = self._scheduled(c.clip_range, c.clip_range_schedule)

        # Advantages and value targets; truncated episodes bootstrap from V(true final obs).
        next_obs = np.asarray(rollout["next_obs"])
        next_value = np.asarray(self._value(self.state.params, next_obs.reshape(size, *next_obs.shape[2:])))
        advantages, returns = gae(
            rollout["reward"], rollout["value"], next_value.reshape(T, N),
            rollout["terminated"], rollout["truncated"], c.gamma, c.gae_lambda,
        )  # fmt: skip
        flat = {
            "obs": rollout["obs"],
            "action": rollout.get("raw_action", rollout["action"]),
            "log_prob": rollout["log_prob"],
            "value": rollout["value"],
            "advantage": advantages,
            "return": returns,
        }
        data = {k: np.asarray(v).reshape(size, *np.shape(v)[2:]) for k, v in flat.items()}  # [T*N, ...]
        self.state, values = self._update(self.state, data, lr, clip)

        metrics = dict(zip(METRICS, np.asarray(values).tolist(), strict=True))
        metrics["train/explained_variance"] = explained_variance(rollout["value"], returns)
        metrics["train/learning_rate"] = lr
        metrics["train/clip_range"] = clip
        if self.box is not None:
            metrics["train/std"] = float(np.exp(np.asarray(self.state.params["log_std"])).mean())
        return metrics

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume, as numpy: the state pytree and the schedules' progress."""
        return {"state": to_numpy(self.state._asdict()), "progress_remaining": self.progress_remaining}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved.

        Raises:
            KeyError: a part missing from ``state`` (a checkpoint of another agent or another version).
        """
        missing = [k for k in ("state", "progress_remaining") if k not in state]
        if missing:
            raise KeyError(f"{type(self).__name__} checkpoint lacks {missing}; it holds {sorted(state)}")
        self.state = PPOState(**to_jax(state["state"]))
        self.progress_remaining = state["progress_remaining"]

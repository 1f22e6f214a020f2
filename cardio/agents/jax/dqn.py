"""DQN in JAX: the twin of :mod:`cardio.agents.dqn`, with the same config, maths and metric names.

Mnih et al. 2015, "Human-level control through deep reinforcement learning" (Nature 518); double DQN:
van Hasselt et al. 2016 (arXiv:1509.06461). Defaults are SB3's DQN defaults; the rl-zoo values per env apply to
both twins (``DQNConfig.zoo_name = "dqn"``). Replay, collection and the update schedule are the runner's business.

The agent's state is one pytree, :class:`DQNState`: ``params`` and ``target_params`` (MLPs), ``opt_state`` (Adam)
and ``key`` (the PRNG key of epsilon draws and argmax tie-breaks). ``act`` and ``update`` each call one jitted pure
function of that state; epsilon and the target syncs follow env steps in ``on_progress``, as in the torch twin.

Metrics returned by :meth:`DQNJax.update`: ``train/loss`` (Huber), ``train/q_mean`` (Q of the taken actions),
``train/td_target_mean``, ``train/grad_norm`` (before clipping), ``rollout/exploration_rate`` (epsilon),
``train/learning_rate``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, NamedTuple

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import optax

from cardio.agents.configs import DQNConfig
from cardio.agents.counters import syncs_due
from cardio.agents.jax.networks import (
    adam,
    apply,
    argmax_random_ties,
    global_norm,
    jit_once,
    mlp,
    mlp_init,
    new_rngs,
    optimiser_state,
    to_jax,
    to_numpy,
)
from cardio.agents.jax.twin import FlatObservations, OffPolicyTwin, check_twin
from cardio.agents.noise import linear_epsilon


@dataclass
class DQNJaxConfig(FlatObservations, DQNConfig):
    """:class:`~cardio.agents.configs.DQNConfig`'s knobs (``configs/agent/dqn_jax.yaml``), built as the JAX twin."""

    def agent_class(self) -> type[DQNJax]:
        return DQNJax


class DQNState(NamedTuple):
    """Everything that changes during training, as jax arrays (a leading seed axis when seeds are batched)."""

    params: Any
    target_params: Any
    opt_state: Any
    key: Any  # uint32 [2]: numpy until the first jitted call returns it as a jax array


METRICS = ("train/loss", "train/q_mean", "train/td_target_mean", "train/grad_norm")
UNSUPPORTED = ("lr_schedule", "activation")  # the torch twin's knobs this one lacks


def act(
    params: Any, key: jax.Array, obs: jax.Array, epsilon: jax.Array, *, explore: bool, num_actions: int
) -> tuple[jax.Array, jax.Array]:
    """Greedy actions (ties at random); with ``explore``, each env's action is uniform with prob. ``epsilon``.
    Takes and returns only what it needs (``params``, ``key``): every array through a jit boundary costs."""
    key, k_ties, k_explore, k_uniform = jax.random.split(key, 4)
    q = mlp(params, obs.reshape(len(obs), -1))
    action = argmax_random_ties(k_ties, q)
    if explore:
        uniform = jax.random.randint(k_uniform, action.shape, 0, num_actions)
        action = jnp.where(jax.random.uniform(k_explore, action.shape) < epsilon, uniform, action)
    return action, key


def update(
    state: DQNState, batch: dict[str, jax.Array], *, tx: optax.GradientTransformation, config: DQNConfig
) -> tuple[DQNState, jax.Array, jax.Array]:
    """One gradient step on a ``[B, ...]`` batch; bootstraps on ``terminated`` only, never ``truncated``.
    Returns the new state, the :data:`METRICS` values and the absolute TD errors ``[B]``."""
    c = config
    obs = batch["obs"].reshape(len(batch["obs"]), -1)
    next_obs = batch["next_obs"].reshape(len(batch["next_obs"]), -1)
    not_terminal = 1.0 - batch["terminated"].astype(jnp.float32)
    discount = batch.get("discount", c.gamma)

    # TD target without grad; double DQN chooses the next action with the online network.
    next_q_all = mlp(state.target_params, next_obs)
    if c.double_q:
        next_action = mlp(state.params, next_obs).argmax(axis=1, keepdims=True)
        next_q = jnp.take_along_axis(next_q_all, next_action, axis=1)[:, 0]
    else:
        next_q = next_q_all.max(axis=1)
    td_target = jax.lax.stop_gradient(batch["reward"] + discount * not_terminal * next_q)

    def loss_fn(params: Any) -> tuple[jax.Array, jax.Array]:
        # Q of the actions taken.
        q = jnp.take_along_axis(mlp(params, obs), batch["action"].reshape(-1, 1).astype(jnp.int32), axis=1)[:, 0]
        # Huber loss, importance-weighted when the batch comes from prioritized replay.
        per_sample = optax.huber_loss(q, td_target, delta=1.0)
        return (per_sample * batch.get("weight", 1.0)).mean(), q

    (loss, q), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    # Clipped optimiser step.
    params, opt_state = apply(tx, state.params, state.opt_state, grads, c.lr)
    metrics = jnp.stack([loss, q.mean(), td_target.mean(), global_norm(grads)])
    return state._replace(params=params, opt_state=opt_state), metrics, jnp.abs(td_target - q)


class DQNJax(OffPolicyTwin):
    """Deep Q-Network agent in JAX; see the module docstring for the paper, state and metric names. ``act`` and
    ``update`` (one jitted call of the functions above each) are :class:`OffPolicyTwin`'s."""

    def __init__(
        self,
        observation_space: gym.Space,
        action_space: gym.Space,
        config: DQNConfig | None = None,
        *,
        device: str = "cpu",
        seed: int | None = None,
        env_id: str | None = None,
    ) -> None:
        self.config = c = config or DQNConfig()
        obs_dim = check_twin("DQN", observation_space, action_space, (gym.spaces.Discrete,), c, UNSUPPORTED, env_id)
        self.num_actions = int(action_space.n)  # type: ignore[attr-defined]
        # numpy state until the first jitted call: building the agent compiles nothing (networks.new_rngs)
        key, rng = new_rngs(seed)
        params = mlp_init(rng, (obs_dim, *c.hidden_sizes, self.num_actions))
        self.tx = adam(c.max_grad_norm)
        self.state = DQNState(params, params, optimiser_state(self.tx, params), key)
        self.epsilon = c.exploration_initial_eps
        self.target_syncs = 0
        self.metric_names = METRICS
        # The pure functions (vmapped over seeds by cardio.multiseed) and their jitted forms.
        self.act_fn = partial(act, num_actions=self.num_actions)
        self.update_fn = partial(update, tx=self.tx, config=c)
        static = (repr(c), self.num_actions, obs_dim)
        self._act = jit_once(self.act_fn, ("dqn.act", *static), static_argnames="explore")
        self._update = jit_once(self.update_fn, ("dqn.update", *static))

    def on_progress(self, env_steps: int, total_steps: int) -> None:
        """Linear epsilon decay over env steps, and a hard target sync every ``target_update_interval``."""
        c = self.config
        self.epsilon = linear_epsilon(
            env_steps, total_steps, c.exploration_fraction, c.exploration_initial_eps, c.exploration_final_eps
        )
        sync, self.target_syncs = syncs_due(env_steps, c.target_update_interval, self.target_syncs)
        if sync:  # the count restarts with the step counter (Runner.reset), as the torch twin's does
            self.state = self.state._replace(target_params=self.state.params)

    def policy_args(self) -> tuple[Any, tuple[Any, ...]]:
        """``act_fn``'s per-seed parameters, and the arguments every seed shares (epsilon)."""
        return self.state.params, (self.epsilon,)

    def update_args(self) -> tuple[Any, ...]:
        """``update_fn``'s arguments after the batch, shared by every seed (none)."""
        return ()

    def env_action(self, action: Any, num_envs: int) -> np.ndarray:
        """``act_fn``'s actions for ``num_envs`` envs as the env takes them."""
        return np.asarray(action)

    def extra_metrics(self) -> dict[str, float]:
        """Metrics of the agent's Python-side schedules, added to every update's."""
        return {"rollout/exploration_rate": self.epsilon, "train/learning_rate": self.config.lr}  # constant only

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume, as numpy: the state pytree, epsilon and the target-sync counter."""
        return {"state": to_numpy(self.state._asdict()), "epsilon": self.epsilon, "target_syncs": self.target_syncs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved.

        Raises:
            KeyError: a part missing from ``state`` (a checkpoint of another agent or another version).
        """
        missing = [k for k in ("state", "epsilon", "target_syncs") if k not in state]
        if missing:
            raise KeyError(f"{type(self).__name__} checkpoint lacks {missing}; it holds {sorted(state)}")
        self.state = DQNState(**to_jax(state["state"]))
        self.epsilon, self.target_syncs = state["epsilon"], state["target_syncs"]

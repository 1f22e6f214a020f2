"""What the off-policy JAX twins (DQN, SAC) share besides their networks: the config's flat-observation rule,
the checks that open ``__init__``, and ``act`` / ``update``, which call one jitted pure function each.

A twin subclasses :class:`OffPolicyTwin`, sets ``state`` (its pytree), ``_act``, ``_update`` and
``metric_names`` in ``__init__``, and says through four small methods what differs: ``policy_args``,
``update_args``, ``env_action``, ``extra_metrics`` (``cardio.multiseed`` batches seeds through the same four).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from cardio.agents.base import require_space
from cardio.agents.configs import refuse_unsupported
from cardio.agents.jax.networks import replay_batch


class FlatObservations:
    """Mixin of a JAX twin's config (``class DQNJaxConfig(FlatObservations, DQNConfig)``)."""

    observation_spaces: ClassVar[tuple[type[gym.Space], ...]] = (gym.spaces.Box,)
    """Flat observations only: the torch agent's Dict / Tuple encoders have no JAX twin."""


def check_twin(
    agent: str,
    observation_space: gym.Space,
    action_space: gym.Space,
    action_spaces: tuple[type[gym.Space], ...],
    config: Any,
    unsupported: tuple[str, ...],
    env_id: str | None,
) -> int:
    """Refuse spaces and knobs the twin lacks, each with a message naming it; returns the flat observation size.

    Args:
        agent: the algorithm's name, e.g. ``"DQN"``.
        observation_space: the env's; a Box (flattened) is the only kind a twin takes.
        action_space: the env's; one of ``action_spaces``.
        action_spaces: the kinds of action space the algorithm handles.
        config: the agent config.
        unsupported: the torch twin's knobs this twin lacks (each must keep its default).
        env_id: named in the messages.

    Raises:
        ConfigError: a space of another kind, or an unsupported knob changed from its default.
    """
    require_space(agent, "action", action_space, action_spaces, env_id)
    require_space(agent, "observation", observation_space, (gym.spaces.Box,), env_id)
    refuse_unsupported(config, f"{agent} (JAX)", unsupported)
    return int(np.prod(observation_space.shape))  # type: ignore[arg-type]


class OffPolicyTwin:
    """``act`` and ``update`` of a JAX twin: one jitted call each (see the module docstring)."""

    state: Any
    metric_names: tuple[str, ...]
    _act: Callable[..., Any]
    _update: Callable[..., Any]

    def act(self, obs: np.ndarray, explore: bool) -> tuple[np.ndarray, dict[str, Any]]:
        """The policy's actions for ``obs [N, ...]``; with ``explore``, the exploring ones."""
        policy, shared = self.policy_args()
        action, key = self._act(policy, self.state.key, np.asarray(obs, np.float32), *shared, explore=explore)
        self.state = self.state._replace(key=key)
        return self.env_action(action, len(obs)), {}

    def update(self, batch: dict[str, Any]) -> dict[str, Any]:
        """One update on a ``[B, ...]`` batch; ``td_error`` too when the batch is prioritized (has ``weight``)."""
        self.state, values, td_error = self._update(self.state, replay_batch(batch), *self.update_args())
        metrics: dict[str, Any] = dict(zip(self.metric_names, np.asarray(values).tolist(), strict=True))
        metrics |= self.extra_metrics()
        if "weight" in batch:
            metrics["td_error"] = np.asarray(td_error)
        return metrics

    # What cardio.multiseed needs to batch seeds: act_fn(policy, key, obs, *shared, explore) and
    # update_fn(state, batch, *update_args) with a leading seed axis on policy, key, obs, state and batch.
    def policy_args(self) -> tuple[Any, tuple[Any, ...]]:
        """``act_fn``'s per-seed parameters, and the arguments every seed shares."""
        raise NotImplementedError

    def update_args(self) -> tuple[Any, ...]:
        """``update_fn``'s arguments after the batch, shared by every seed."""
        raise NotImplementedError

    def env_action(self, action: Any, num_envs: int) -> np.ndarray:
        """``act_fn``'s actions for ``num_envs`` envs as the env takes them."""
        raise NotImplementedError

    def extra_metrics(self) -> dict[str, float]:
        """Metrics of the agent's Python-side schedules, added to every update's."""
        raise NotImplementedError

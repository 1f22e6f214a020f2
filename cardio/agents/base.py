"""The Agent contract: numpy in, numpy out; the algorithm's maths and nothing of env or buffer plumbing.

An agent is any object with these methods (a ``typing.Protocol``, no base class to inherit):

``act(obs, explore) -> (action, extras)``
    ``obs`` has a leading env dim ``[N, ...]``; returns ``action [N, ...]`` and a dict of per-env extras
    (``log_prob``, ``value``...) that the gatherer stores with the transition. ``explore=False`` is the
    deterministic policy used for evaluation.
``update(batch) -> metrics``
    One learning step from a batch pytree. Off-policy: ``[B, ...]`` sampled transitions (n-step samples add
    ``discount = gamma**k``; prioritized samples add ``weight``). On-policy: the whole rollout ``[T, N, ...]``.
    Returns ``{"train/<name>": float}``. The optional key ``"td_error"`` (``[B]`` array) is consumed by the
    runner to update replay priorities and is never logged.
``state_dict() / load_state_dict(state)``
    Everything needed to resume: networks, optimisers, counters, RNG.
``on_progress(env_steps, total_steps)`` (optional)
    Called by the runner before every vector step, so schedules (epsilon, learning rate, target syncs) are
    functions of env steps, as in SB3.
``on_episode_end(ended)`` (optional)
    Called by the runner after every training vector step in which some env's episode ended, with the ``[N]``
    bool mask of those envs (NEXT_STEP reset rows included), so per-episode exploration processes (OU noise)
    restart. Not called for the eval envs, whose policy is deterministic.
``initial_state(num_envs) -> state`` (optional: recurrent agents such as DRQN)
    A fresh policy state for ``num_envs`` envs: an array or pytree with leading dim ``[N, ...]``. When present,
    the runner keeps one state for the training envs and one for the eval envs and calls
    ``act(obs, explore, state=state)``; the extras must hold ``"next_state"`` (taken by the runner, never
    stored) and may hold ``"state"`` (stored with the transition like any extra; warm-up steps with random
    actions carry no extras). Rows of envs whose episode ended, and NEXT_STEP reset rows, are replaced by
    ``initial_state`` rows after each step; the eval state is re-initialised at every evaluation. The policy
    state is not checkpointed: a resumed run starts its current episodes from a fresh state.
"""

from __future__ import annotations

from typing import Any, Generic, Protocol, TypeVar, cast, runtime_checkable

import gymnasium as gym

from cardio.pytree import Tree


@runtime_checkable
class Agent(Protocol):
    """What the runner needs from an agent; see the module docstring for the exact contract."""

    def act(self, obs: Tree, explore: bool) -> tuple[Any, dict[str, Any]]: ...

    def update(self, batch: Tree) -> dict[str, Any]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class SpaceError(ValueError):
    """An agent given a space it cannot handle (DQN on Box actions, SAC on Discrete...)."""


def require_space(
    agent: str, role: str, space: gym.Space, allowed: tuple[type[gym.Space], ...], env_id: str | None
) -> None:
    """Raise :class:`SpaceError` naming the agent, the env and the space unless ``space`` is one of ``allowed``.

    Args:
        agent: agent name for the message, e.g. ``"DQN"``.
        role: ``"action"`` or ``"observation"``.
        space: the env's (single-env) space.
        allowed: accepted space classes.
        env_id: the env id for the message (``None`` when unknown).
    """
    if not isinstance(space, allowed):
        names = " or ".join(cls.__name__ for cls in allowed)
        raise SpaceError(
            f"{agent} needs a {names} {role} space, but env {env_id or '<unknown>'!r} has {role} space {space}. "
            f"Pick an agent that supports {type(space).__name__} {role}s."
        )


AgentT = TypeVar("AgentT")


class AgentConfig(Generic[AgentT]):
    """Base of every ``XConfig`` dataclass: the knobs live in the subclass, :meth:`build` is shared.

    A subclass names its agent in :meth:`agent_class`; the agent's constructor takes
    ``(observation_space, action_space, config, *, device, seed, env_id)``.
    """

    def agent_class(self) -> type[AgentT]:
        """The agent class these knobs configure."""
        raise NotImplementedError(f"{type(self).__name__} must name its agent in agent_class()")

    def build(
        self,
        observation_space: gym.Space,
        action_space: gym.Space,
        *,
        device: str = "cpu",
        seed: int | None = None,
        env_id: str | None = None,
    ) -> AgentT:
        """The agent for the env's single-env spaces.

        Args:
            observation_space: the env's (single-env) observation space.
            action_space: the env's (single-env) action space.
            device: torch device of the agent's networks.
            seed: seeds the agent's own generator (exploration, tie-breaks).
            env_id: the env id, named in error messages.

        Raises:
            SpaceError: a space the agent cannot handle; the message names the agent, the env and the space.
        """
        agent_cls = cast(Any, self.agent_class())
        return agent_cls(observation_space, action_space, self, device=device, seed=seed, env_id=env_id)

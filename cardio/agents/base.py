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

import importlib
import pkgutil
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, TypeVar, cast, runtime_checkable

import gymnasium as gym

from cardio.errors import ConfigError
from cardio.pytree import Tree


@runtime_checkable
class Agent(Protocol):
    """What the runner needs from an agent; see the module docstring for the exact contract."""

    def act(self, obs: Tree, explore: bool) -> tuple[Any, dict[str, Any]]: ...

    def update(self, batch: Tree) -> dict[str, Any]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class SpaceError(ConfigError):
    """An agent given a space it cannot handle (DQN on Box actions, SAC on Discrete...)."""


def agents_taking(role: str, space: gym.Space) -> list[str]:
    """Names of cardio's agents whose config declares ``space``'s class among its ``<role>_spaces``.

    Every module of :mod:`cardio.agents` is scanned for config classes that declare ``observation_spaces`` and
    ``action_spaces`` (class attributes), so a new agent file counts without a list to update; a module whose
    optional framework is missing (JAX) is skipped.

    Args:
        role: ``"action"`` or ``"observation"``.
        space: the space an agent would have to take.
    """
    names: list[str] = []
    for info in pkgutil.iter_modules([str(Path(__file__).parent)]):  # this package's modules, imported by name
        try:
            module = importlib.import_module(f"cardio.agents.{info.name}")
        except Exception:  # an optional framework that is not installed
            continue
        for obj in vars(module).values():
            declared = getattr(obj, f"{role}_spaces", None)
            if not (isinstance(obj, type) and obj.__module__ == module.__name__ and isinstance(declared, tuple)):
                continue
            if not getattr(obj, "zoo_name", None):  # a base of several agents' knobs (ActorCriticConfig)
                continue
            if isinstance(space, declared):
                names.append(obj.__name__.removesuffix("Config"))
    return sorted(set(names))


def space_refusal(
    agent: str, role: str, space: gym.Space, allowed: tuple[type[gym.Space], ...], env_id: str | None
) -> str | None:
    """The refusal message of :func:`require_space`, or ``None`` when ``space`` is one of ``allowed``."""
    if isinstance(space, allowed):
        return None
    names = " or ".join(cls.__name__ for cls in allowed)
    kind = type(space).__name__
    others = [name for name in agents_taking(role, space) if name != agent]
    if others:
        way_out = f"agents that take {kind} {role}s: {', '.join(others)}"
    elif role == "observation":
        way_out = (
            f"no cardio agent takes {kind} observations; flatten them with a wrapper in env.wrappers, e.g. "
            f"gymnasium.wrappers.FlattenObservation"
        )
    else:
        way_out = f"no cardio agent takes {kind} actions; wrap the env to expose Discrete or Box actions"
    return (
        f"{agent} needs a {names} {role} space, but env {env_id or '<unknown>'!r} has {role} space {space}; {way_out}"
    )


def require_space(
    agent: str, role: str, space: gym.Space, allowed: tuple[type[gym.Space], ...], env_id: str | None
) -> None:
    """Raise :class:`SpaceError` naming the agent, the env and the space unless ``space`` is one of ``allowed``;
    the message lists the agents that do take that space (:func:`agents_taking`), or says that none does.

    Args:
        agent: agent name for the message, e.g. ``"DQN"``.
        role: ``"action"`` or ``"observation"``.
        space: the env's (single-env) space.
        allowed: accepted space classes (an agent passes its config's ``action_spaces``/``observation_spaces``).
        env_id: the env id for the message (``None`` when unknown).
    """
    message = space_refusal(agent, role, space, allowed, env_id)
    if message is not None:
        raise SpaceError(message)


AgentT = TypeVar("AgentT")


class AgentConfig(Generic[AgentT]):
    """Base of every ``XConfig`` dataclass: the knobs live in the subclass, :meth:`build` is shared.

    A subclass names its agent in :meth:`agent_class`; the agent's constructor takes
    ``(observation_space, action_space, config, *, device, seed, env_id)``. Three class attributes describe it
    to the rest of cardio: ``zoo_name`` (its folder under ``configs/zoo/``), and ``observation_spaces`` /
    ``action_spaces`` (the space classes it takes: validation refuses others before anything is built, and a
    refusal lists the agents that do take the space).
    """

    zoo_name: ClassVar[str]
    """Folder of this algorithm's tuned hyperparameters: ``configs/zoo/<zoo_name>/<EnvId>.yaml``."""
    observation_spaces: ClassVar[tuple[type[gym.Space], ...]]
    """Observation space classes the agent takes."""
    action_spaces: ClassVar[tuple[type[gym.Space], ...]]
    """Action space classes the agent takes."""

    agent_path: ClassVar[str | None] = None
    """The agent class as ``"module:Class"``, imported when built (so a config module imports no framework);
    or override :meth:`agent_class`."""

    def agent_class(self) -> type[AgentT]:
        """The agent class these knobs configure (``agent_path``, imported now)."""
        if self.agent_path is None:
            raise NotImplementedError(f"{type(self).__name__} must name its agent in agent_path or agent_class()")
        module, _, name = self.agent_path.partition(":")
        return cast(type[AgentT], getattr(importlib.import_module(module), name))

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

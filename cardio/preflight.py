"""Pre-flight checks that need the env or the machine: spaces, the buffer's memory, env copies, the device.

Step 3 of :func:`cardio.validate.validate`, kept apart from the config's types and ranges (``cardio/validate.py``):
one env copy is made to read its spaces, the agent must declare that it takes them, the replay or rollout buffer
must fit in the memory this job may use (the tightest of the node, its cgroup, SLURM's grant and ``ulimit``:
:mod:`cardio.limits`), native vector envs are built once so that their refusals come first, and more
subprocess env copies than the job's CPUs get a warning naming the limit. ``device`` is resolved here too
(:mod:`cardio.device`).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np

from cardio.errors import ConfigError
from cardio.limits import Limit, cpu_limit, human, memory_limit


def env_spaces(env_node: Mapping[str, Any]) -> tuple[gym.Space, gym.Space]:
    """The single-env observation and action spaces of the env an ``env`` config node builds (one copy)."""
    from cardio.envs.factory import make_single_env

    try:
        wrappers, train_wrappers = env_node.get("wrappers") or (), env_node.get("train_wrappers") or ()
        env = make_single_env(env_node["id"], env_node.get("kwargs") or {}, wrappers, train_wrappers)
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(
            f"env.id={env_node['id']!r}: making the env failed: {type(exc).__name__}: {str(exc).splitlines()[0]}"
            f" (check env.kwargs={env_node.get('kwargs')!r} and env.wrappers={env_node.get('wrappers')!r})"
        ) from exc
    try:
        return env.observation_space, env.action_space
    finally:
        env.close()


def check_agent_spaces(plain: Mapping[str, Any], observation_space: gym.Space, action_space: gym.Space) -> None:
    """Refuse an agent whose config declares spaces that do not include the env's (see ``require_space``)."""
    from hydra.utils import get_object

    from cardio.agents.base import SpaceError, space_refusal

    cls = get_object(plain["agent"]["_target_"])
    name = getattr(cls, "__name__", "agent").removesuffix("Config")
    for role, space in (("action", action_space), ("observation", observation_space)):
        allowed = getattr(cls, f"{role}_spaces", None)
        if not isinstance(allowed, tuple):
            continue  # a user's agent that declares nothing: its constructor decides
        message = space_refusal(name, role, space, allowed, str(plain["env"]["id"]))
        if message is not None:
            raise SpaceError(message)


def check_native_vectorization(env_node: Mapping[str, Any]) -> None:
    """``env.vectorization=vector_entry_point``: build a one-copy native vector env, so its refusals (no native
    implementation, per-copy wrappers, an autoreset mode it does not have) come before the run dir is made."""
    if env_node.get("vectorization") != "vector_entry_point":
        return
    from cardio.envs.factory import make_native_vector_env

    make_native_vector_env(
        env_node["id"],
        1,
        env_node.get("kwargs"),
        env_node.get("wrappers") or (),
        env_node.get("autoreset", "same_step"),
    ).close()


def check_env_copies(env_node: Mapping[str, Any], cpus: Limit | None = None) -> None:
    """Warn when ``env.vectorization=async`` asks for more env processes than the job's CPUs (:func:`cpu_limit`):
    legal, but the copies then take turns on the CPUs they share and the run is no faster than with fewer."""
    if env_node.get("vectorization") != "async":
        return
    cpus = cpu_limit() if cpus is None else cpus
    num_envs = int(env_node.get("num_envs", 1))
    if num_envs > cpus.value:
        warnings.warn(
            f"env.num_envs={num_envs} async env processes on {cpus.value} CPU(s) ({cpus.source}): they share the "
            f"CPUs; env.num_envs={cpus.value} or env.vectorization=sync steps as fast",
            stacklevel=2,
        )


def _space_bytes(space: gym.Space) -> int:
    """Bytes one item of ``space`` takes in a buffer (float64 is stored as float32, as the buffer does)."""
    if isinstance(space, gym.spaces.Dict):
        return sum(_space_bytes(s) for s in space.spaces.values())
    if isinstance(space, gym.spaces.Tuple):
        return sum(_space_bytes(s) for s in space.spaces)
    if isinstance(space, gym.spaces.Discrete):
        return 8
    shape = space.shape or (1,)
    dtype = np.dtype(space.dtype) if space.dtype is not None else np.dtype(np.float32)
    itemsize = 4 if dtype == np.float64 else dtype.itemsize
    return int(np.prod(shape, dtype=np.int64)) * itemsize


def available_memory() -> int | None:
    """Bytes this process may still allocate: the tightest of the node's ``MemAvailable``, its cgroups' limits,
    SLURM's grant for the job and ``ulimit`` (:func:`cardio.limits.memory_limit`)."""
    limit = memory_limit()
    return None if limit is None else limit.value


def check_memory(
    plain: Mapping[str, Any],
    observation_space: gym.Space,
    action_space: gym.Space,
    available: int | Limit | None = None,
) -> int:
    """Refuse a replay or rollout buffer that would not fit in memory, before it is allocated.

    Counts the stored fields per transition (observation, next observation unless ``memory_saving`` (``auto``
    resolved as ``cardio.build`` does), action, float32 reward, two flags, 16 bytes of agent extras) times the
    transitions held: ``buffer.capacity`` off-policy, ``runner.schedule.n_steps * env.num_envs`` on-policy.
    Under ``memory_saving`` the side pool of final observations (one per stored episode end) is left out: it is
    small unless episodes are a few steps long. Returns the bytes needed.

    Args:
        plain: the resolved config.
        observation_space: the env's single-env observation space.
        action_space: the env's single-env action space.
        available: bytes available, or a :class:`~cardio.limits.Limit` naming where they come from (default:
            the tightest limit of this process, :func:`cardio.limits.memory_limit`).

    Raises:
        ConfigError: more bytes needed than available; names the key, both sizes, the limit and its source, and
            the largest value that fits.
    """
    from cardio.buffers.circular import resolve_memory_saving

    buffer = plain["buffer"]
    obs = _space_bytes(observation_space)
    runner = plain.get("runner") or {}
    n_steps = (runner.get("schedule") or {}).get("n_steps")
    saving = resolve_memory_saving(buffer.get("memory_saving", False), observation_space, isinstance(n_steps, int))
    per_transition = obs * (1 if saving else 2) + _space_bytes(action_space) + 4 + 2 + 16
    if isinstance(n_steps, int):  # on-policy: the rollout buffer holds one rollout
        key, count = "runner.schedule.n_steps", n_steps * int(plain["env"].get("num_envs", 1))
        shown = n_steps
    else:
        key, count, shown = "buffer.capacity", int(buffer.get("capacity", 0)), int(buffer.get("capacity", 0))
    needed = per_transition * count
    limit = Limit(available, "given") if isinstance(available, int) else available
    limit = memory_limit() if limit is None else limit
    if limit is not None and needed > limit.value:
        fits = limit.value // per_transition
        source = "" if limit.source == "given" else f" ({limit.source})"
        raise ConfigError(
            f"{key}={shown:g}: the buffer needs {human(needed)} ({per_transition} bytes per transition x {count:g} "
            f"transitions of env {plain['env']['id']!r}) but {human(limit.value)} of memory is available{source}; "
            f"at most about {fits:,} transitions fit: lower {key}"
            + ("" if saving or key != "buffer.capacity" else " or set buffer.memory_saving=true")
        )
    return needed

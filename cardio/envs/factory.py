"""Building vector envs from config: one function, every gymnasium id."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import gymnasium as gym
from gymnasium.vector import AutoresetMode
from hydra.utils import get_method

AUTORESET_MODES = {"same_step": AutoresetMode.SAME_STEP, "next_step": AutoresetMode.NEXT_STEP}

ENV_EPISODE_KEY = "env_episode"
"""Info key under which each copy's innermost ``RecordEpisodeStatistics`` reports the env's own episode return
and length (``{"r", "l", "t"}``), before any user wrapper rescales or clips rewards. The gatherer reads it, so
``rollout/ep_rew_mean`` and ``eval/*`` are the env's returns (SB3's ``Monitor`` convention)."""


def _resolve_wrapper(spec: str | Callable[..., gym.Env] | dict[str, Any]) -> Callable[[gym.Env], gym.Env]:
    """A wrapper given as a callable, a dotted path, or ``{"_target_": path, **kwargs}``."""
    if callable(spec):
        return spec
    if isinstance(spec, str):
        return get_method(spec)
    kwargs = dict(spec)
    kwargs.pop("_partial_", None)  # accepted, not needed: make_env passes the env itself
    if "_target_" not in kwargs:
        raise ValueError(f"env.wrappers entry {spec!r} needs a _target_ naming the wrapper class or function")
    target = get_method(kwargs.pop("_target_"))
    return lambda env: target(env, **kwargs)


def make_single_env(
    id: str,
    kwargs: dict[str, Any] | None = None,
    wrappers: Sequence[str | Callable[..., gym.Env] | dict[str, Any]] = (),
) -> gym.Env:
    """One copy of the env exactly as :func:`make_env` builds each: ``gym.make``, an innermost
    ``RecordEpisodeStatistics`` (key ``ENV_EPISODE_KEY``) that sees the raw rewards, then ``wrappers`` innermost
    first. For code outside cardio's gatherer that needs the same env (benchmarks against other libraries)."""
    env = gym.make(id, **(kwargs or {}))
    env = gym.wrappers.RecordEpisodeStatistics(env, stats_key=ENV_EPISODE_KEY)  # the env's own returns
    for wrap in [_resolve_wrapper(w) for w in wrappers]:
        env = wrap(env)
    return env


def make_env(
    id: str,
    num_envs: int = 1,
    seed: int | None = None,
    kwargs: dict[str, Any] | None = None,
    wrappers: Sequence[str | Callable[..., gym.Env] | dict[str, Any]] = (),
    vectorization: Literal["sync", "async"] = "sync",
    autoreset: Literal["same_step", "next_step"] = "same_step",
) -> gym.vector.VectorEnv:
    """Build a vector env of ``num_envs`` copies of gymnasium env ``id``.

    Args:
        id: any registered gymnasium id, e.g. ``"CartPole-v1"`` or ``"cardio/Counting-v0"``.
        num_envs: parallel copies (1 is fine: the gatherer always sees a leading env dim).
        seed: seeds the action space here; the gatherer seeds ``reset`` once with it.
        kwargs: passed to ``gym.make`` for each copy (e.g. ``{"continuous": true}``).
        wrappers: applied to each copy, innermost first: callables, dotted paths or ``{_target_, ...}`` dicts.
            They sit outside a ``RecordEpisodeStatistics`` (key ``ENV_EPISODE_KEY``) that sees the raw rewards.
        vectorization: ``"sync"`` (one process, best for cheap envs) or ``"async"`` (subprocesses).
        autoreset: ``"same_step"`` (default; final obs in ``info``, every step is a transition, rollouts are
            dense ``[T, N]``) or ``"next_step"`` (gymnasium's default; the gatherer drops the reset step).

    Raises:
        ValueError: unknown env id, or an option value outside its choices.
    """
    if num_envs <= 0:
        raise ValueError(f"env.num_envs must be positive, got {num_envs} (env {id!r})")
    if autoreset not in AUTORESET_MODES:
        raise ValueError(f"env.autoreset must be one of {sorted(AUTORESET_MODES)}, got {autoreset!r}")
    if vectorization not in ("sync", "async"):
        raise ValueError(f"env.vectorization must be 'sync' or 'async', got {vectorization!r}")
    if id not in gym.registry:
        close = [k for k in gym.registry if k.lower().startswith(id.split("-")[0].lower())][:5]
        raise ValueError(f"unknown gymnasium env id {id!r} (env.id); similar registered ids: {close or 'none'}")
    wrapper_fns = [_resolve_wrapper(w) for w in wrappers]  # a bad wrapper path fails here, not in a worker process

    def make_one() -> gym.Env:
        return make_single_env(id, kwargs, wrapper_fns)

    vector_cls = gym.vector.SyncVectorEnv if vectorization == "sync" else gym.vector.AsyncVectorEnv
    env = vector_cls([make_one] * num_envs, autoreset_mode=AUTORESET_MODES[autoreset])
    if seed is not None:
        env.action_space.seed(seed)
        env.single_action_space.seed(seed)
    return env

"""Building vector envs from config: one function, every gymnasium id."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Sequence
from typing import Any, Literal

import gymnasium as gym
from gymnasium.vector import AutoresetMode
from hydra.utils import get_method

from cardio.errors import ConfigError

AUTORESET_MODES = {"same_step": AutoresetMode.SAME_STEP, "next_step": AutoresetMode.NEXT_STEP}

ENV_EPISODE_KEY = "env_episode"
"""Info key under which each copy's innermost ``RecordEpisodeStatistics`` reports the env's own episode return
and length (``{"r", "l", "t"}``), before any user wrapper rescales or clips rewards. The gatherer reads it, so
``rollout/ep_rew_mean`` and ``eval/*`` are the env's returns (SB3's ``Monitor`` convention)."""


def check_env_id(id: str) -> str:
    """The registered id of ``id``, importing the module of gymnasium's ``module:EnvId`` form first (as
    ``gym.make`` does), so a user's own env needs no edit inside cardio.

    Args:
        id: a registered id (``"CartPole-v1"``) or ``"my_pkg.envs:Maze-v0"`` (``my_pkg.envs`` registers it).

    Raises:
        ConfigError: the module cannot be imported, or the id is not registered; the message names close ids.
    """
    module, _, name = id.rpartition(":")
    if module:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ConfigError(
                f"env.id={id!r}: cannot import module {module!r} ({exc}); the `module:EnvId` form imports "
                f"`module` (it must be importable, e.g. on PYTHONPATH) and then makes EnvId"
            ) from exc
    if name not in gym.registry:
        close = difflib.get_close_matches(name, list(gym.registry), n=5, cutoff=0.7)
        close += [k for k in gym.registry if k.lower().startswith(name.split("-")[0].lower()) and k not in close]
        hint = f"similar registered ids: {', '.join(close[:5])}" if close else "no similar registered id"
        where = f" after importing {module!r}" if module else ""
        raise ConfigError(
            f"env.id={id!r}: no gymnasium env registered as {name!r}{where}; {hint} "
            f"(your own env: env.id=your_module:YourEnv-v0, with your_module calling gymnasium.register)"
        )
    return name


def _resolve_wrapper(spec: str | Callable[..., gym.Env] | dict[str, Any]) -> Callable[[gym.Env], gym.Env]:
    """A wrapper given as a callable, a dotted path, or ``{"_target_": path, **kwargs}``."""
    if callable(spec):
        return spec
    if isinstance(spec, str):
        return get_method(spec)
    kwargs = dict(spec)
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
        id: any registered gymnasium id, e.g. ``"CartPole-v1"`` or ``"cardio/Counting-v0"``, or gymnasium's
            ``"module:EnvId"`` form (``module`` is imported first and registers ``EnvId``).
        num_envs: parallel copies (1 is fine: the gatherer always sees a leading env dim).
        seed: seeds the action space here; the gatherer seeds ``reset`` once with it.
        kwargs: passed to ``gym.make`` for each copy (e.g. ``{"continuous": true}``).
        wrappers: applied to each copy, innermost first: callables, dotted paths or ``{_target_, ...}`` dicts.
            They sit outside a ``RecordEpisodeStatistics`` (key ``ENV_EPISODE_KEY``) that sees the raw rewards.
        vectorization: ``"sync"`` (one process, best for cheap envs) or ``"async"`` (subprocesses).
        autoreset: ``"same_step"`` (default; final obs in ``info``, every step is a transition, rollouts are
            dense ``[T, N]``) or ``"next_step"`` (gymnasium's default; the gatherer drops the reset step).

    Raises:
        ConfigError: unknown env id (a ``ValueError``), or an option value outside its choices.
    """
    if num_envs <= 0:
        raise ConfigError(f"env.num_envs must be positive, got {num_envs} (env {id!r})")
    if autoreset not in AUTORESET_MODES:
        raise ConfigError(f"env.autoreset must be one of {sorted(AUTORESET_MODES)}, got {autoreset!r}")
    if vectorization not in ("sync", "async"):
        raise ConfigError(f"env.vectorization must be 'sync' or 'async', got {vectorization!r}")
    check_env_id(id)  # imports the module of a `module:EnvId` id, so the workers' gym.make finds it too
    wrapper_fns = [_resolve_wrapper(w) for w in wrappers]  # a bad wrapper path fails here, not in a worker process

    def make_one() -> gym.Env:
        return make_single_env(id, kwargs, wrapper_fns)

    vector_cls = gym.vector.SyncVectorEnv if vectorization == "sync" else gym.vector.AsyncVectorEnv
    env = vector_cls([make_one] * num_envs, autoreset_mode=AUTORESET_MODES[autoreset])
    if seed is not None:
        env.action_space.seed(seed)
        env.single_action_space.seed(seed)
    return env

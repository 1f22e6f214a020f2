"""Building vector envs from config: one function, every gymnasium id."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Sequence
from typing import Any, Literal

import gymnasium as gym
from gymnasium.vector import AutoresetMode

from cardio.envs.atari import is_atari_id, register_atari_envs
from cardio.envs.single import OneEnvVector
from cardio.errors import ConfigError

AUTORESET_MODES = {"same_step": AutoresetMode.SAME_STEP, "next_step": AutoresetMode.NEXT_STEP}
VECTORIZATIONS = ("sync", "async", "vector_entry_point")

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
        ConfigError: the module cannot be imported, the id is not registered (the message names close ids), or
            it is an Atari id and ale-py is not installed (the message names the extra).
    """
    module, _, name = id.rpartition(":")
    if not module and name not in gym.registry and is_atari_id(name):
        register_atari_envs(name)  # ale-py is imported only now, when a game is asked for
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
    from hydra.utils import get_method  # only for dotted paths: importing hydra costs ~0.3 s of start-up

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
    train_wrappers: Sequence[str | Callable[..., gym.Env] | dict[str, Any]] = (),
) -> gym.Env:
    """One copy of the env exactly as :func:`make_env` builds each: ``gym.make``, an innermost
    ``RecordEpisodeStatistics`` (key ``ENV_EPISODE_KEY``) that sees the raw rewards, then ``wrappers`` and
    ``train_wrappers``, innermost first. For code outside cardio's gatherer that needs the same env (benchmarks
    against other libraries)."""
    if ":" not in id and id not in gym.registry and is_atari_id(id):
        register_atari_envs(id)  # a worker process of an async vector env registers the games itself
    env = gym.make(id, **(kwargs or {}))
    env = gym.wrappers.RecordEpisodeStatistics(env, stats_key=ENV_EPISODE_KEY)  # the env's own returns
    for wrap in [_resolve_wrapper(w) for w in (*wrappers, *train_wrappers)]:
        env = wrap(env)
    return env


def make_env(
    id: str,
    num_envs: int = 1,
    seed: int | None = None,
    kwargs: dict[str, Any] | None = None,
    wrappers: Sequence[str | Callable[..., gym.Env] | dict[str, Any]] = (),
    train_wrappers: Sequence[str | Callable[..., gym.Env] | dict[str, Any]] = (),
    vectorization: Literal["sync", "async", "vector_entry_point"] = "sync",
    autoreset: Literal["same_step", "next_step"] = "same_step",
) -> gym.vector.VectorEnv:
    """Build a vector env of ``num_envs`` copies of gymnasium env ``id``.

    Args:
        id: any registered gymnasium id, e.g. ``"CartPole-v1"`` or ``"cardio/Counting-v0"``, or gymnasium's
            ``"module:EnvId"`` form (``module`` is imported first and registers ``EnvId``).
        num_envs: parallel copies (1 is fine: the gatherer always sees a leading env dim).
        seed: seeds the action space here; the gatherer seeds ``reset`` once with it.
        kwargs: passed to ``gym.make`` for each copy (e.g. ``{"continuous": true}``), or to the native vector
            env's constructor.
        wrappers: applied to each copy, innermost first: callables, dotted paths or ``{_target_, ...}`` dicts.
            They sit outside a ``RecordEpisodeStatistics`` (key ``ENV_EPISODE_KEY``) that sees the raw rewards.
        train_wrappers: applied outside ``wrappers``, to the training env only: ``cardio.build`` builds the
            evaluation env without them. For what changes learning but must not change the score evaluated
            (Atari's reward clipping and episodic life, ``configs/env/atari.yaml``); they must keep the spaces,
            which the agent shares with the evaluation env.
        vectorization: ``"sync"`` (one process, best for cheap envs), ``"async"`` (subprocesses) or
            ``"vector_entry_point"`` (the env's own batched implementation, e.g. CartPole's
            ``CartPoleVectorEnv``: all copies in one set of numpy arrays, 10x the steps/s of sync at 64 copies).
            The native env has no per-copy envs, so it takes no ``wrappers``; it sees the env's own rewards, so
            the gatherer's episode sums are the env's returns.
        autoreset: ``"same_step"`` (default; final obs in ``info``, every step is a transition, rollouts are
            dense ``[T, N]``) or ``"next_step"`` (gymnasium's default; the gatherer drops the reset step).
            A native vector env has one mode of its own (CartPole's: ``"next_step"``), which must be asked for.

    Raises:
        ConfigError: unknown env id (a ``ValueError``), an option value outside its choices, or
            ``vector_entry_point`` asked of an env without one, with wrappers, or with another autoreset mode
            than the env's own.
    """
    if num_envs <= 0:
        raise ConfigError(f"env.num_envs must be positive, got {num_envs} (env {id!r})")
    if autoreset not in AUTORESET_MODES:
        raise ConfigError(f"env.autoreset must be one of {sorted(AUTORESET_MODES)}, got {autoreset!r}")
    if vectorization not in VECTORIZATIONS:
        raise ConfigError(f"env.vectorization must be one of {list(VECTORIZATIONS)}, got {vectorization!r}")
    # imports the module of a `module:EnvId` id; the copies keep the full id so that gym.make in a spawned worker
    # process imports the module too, while gym.spec (the native path) needs the registered name
    name = check_env_id(id)
    if vectorization == "vector_entry_point":
        native = make_native_vector_env(name, num_envs, kwargs, [*wrappers, *train_wrappers], autoreset)
        _seed_action_spaces(native, seed)
        return native
    # a bad wrapper path fails here, not in a worker process
    wrapper_fns = [_resolve_wrapper(w) for w in (*wrappers, *train_wrappers)]

    def make_one() -> gym.Env:
        return make_single_env(id, kwargs, wrapper_fns)

    mode = AUTORESET_MODES[autoreset]
    env: gym.vector.VectorEnv
    if vectorization == "sync" and num_envs == 1:  # SyncVectorEnv's generic batching costs 2x a CartPole step
        env = OneEnvVector(make_one, autoreset_mode=mode)
    elif vectorization == "sync":
        env = gym.vector.SyncVectorEnv([make_one] * num_envs, autoreset_mode=mode)
    else:  # fresh worker processes: a fork of a process running torch's or JAX's threads can deadlock
        env = gym.vector.AsyncVectorEnv([make_one] * num_envs, autoreset_mode=mode, context="spawn")
    _seed_action_spaces(env, seed)
    return env


def _seed_action_spaces(env: gym.vector.VectorEnv, seed: int | None) -> None:
    if seed is not None:
        env.action_space.seed(seed)
        env.single_action_space.seed(seed)


def make_native_vector_env(
    id: str,
    num_envs: int,
    kwargs: dict[str, Any] | None,
    wrappers: Sequence[Any],
    autoreset: str,
) -> gym.vector.VectorEnv:
    """The env's own vector implementation (``gym.make_vec(..., vectorization_mode="vector_entry_point")``).

    No ``RecordEpisodeStatistics`` is added: without per-copy wrappers the rewards the gatherer receives are the
    env's own, so its episode sums already are the env's returns, and the wrapper would cost a dozen numpy calls
    per step on a path that is otherwise ~1 us per copy. See :func:`make_env` for the arguments.
    """
    spec = gym.spec(id)
    if spec.vector_entry_point is None:
        raise ConfigError(
            f"env {id!r} has no native vector implementation (no vector_entry_point in its registration), so "
            f"env.vectorization='vector_entry_point' cannot build it; use env.vectorization=sync or async"
        )
    if len(wrappers):
        raise ConfigError(
            f"env.wrappers={list(wrappers)!r} are per-copy wrappers, but env {id!r} with "
            f"env.vectorization='vector_entry_point' has no per-copy envs to wrap; use env.vectorization=sync "
            f"(or async) with these wrappers, or drop them"
        )
    env = gym.make_vec(id, num_envs=num_envs, vectorization_mode="vector_entry_point", **(kwargs or {}))
    own = env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
    if own != AUTORESET_MODES[autoreset]:
        env.close()
        own_name = next(name for name, mode in AUTORESET_MODES.items() if mode == own)
        raise ConfigError(
            f"env.autoreset={autoreset!r}, but the native vector env of {id!r} ({type(env).__name__}) always "
            f"autoresets {own_name!r}; set env.autoreset={own_name} with env.vectorization=vector_entry_point"
        )
    return env

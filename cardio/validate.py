"""Check a composed config before anything is built or written: types, ranges, spaces and memory.

:func:`validate` is called by ``scripts/train.py`` (before the config tree is printed, before the run dir is
written), by the sweep driver for every trial and by ``scripts/evaluate.py``. It raises one
:class:`~cardio.errors.ConfigError` (or :class:`~cardio.agents.base.SpaceError`) naming the key, the value given
and what would be right. What it checks:

1. **Types**, derived from the code rather than listed by hand: every node with a ``_target_`` (the agent
   config dataclass, the env factory, the buffer, the runner and its schedule, the logger and each sink) is
   checked against the annotations of what it names, and a key it does not take is refused. Numbers written
   the way people write them (``1e6``, ``2e4``) are accepted for integer keys when they are integral and
   converted in the config (``2.5`` is refused).
2. **Ranges**, the rules in :data:`RANGES` (``gamma`` in [0, 1], ``lr`` > 0, ``seed`` >= 0, ...), and rules
   that tie keys together (PPO's minibatch size must divide the rollout ``n_steps * num_envs``).
3. **The env and the machine** (:mod:`cardio.preflight`): its id is registered (after importing the module of a
   ``module:EnvId`` id), one copy is made to read its spaces, the agent declares that it takes them (its config's
   ``observation_spaces`` / ``action_spaces``), the replay or rollout buffer fits in the memory this job may use
   (the tightest of the node, its cgroup, SLURM's grant and ``ulimit``: :mod:`cardio.limits`), and ``device``
   (``cpu``, ``cuda``, ``auto``) is resolved to one the agent's framework can use (:mod:`cardio.device`).
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import inspect
import math
import types
import typing
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from cardio.device import resolve_device
from cardio.errors import ConfigError
from cardio.preflight import (
    check_agent_spaces,
    check_env_copies,
    check_memory,
    check_native_vectorization,
    env_spaces,
)

__all__ = ["ROOT_KEYS", "check_memory", "validate"]  # check_memory: its home was here (tests import it)

GROUPS = ("env", "agent", "buffer", "runner", "logger")
"""Config groups every training config holds."""

TOP_LEVEL: dict[str, Any] = {
    "seed": int | None,
    "seeds": list[int] | None,
    "device": str,
    "torch_threads": int,
    "resume": str | None,
}
"""Types of the root config's own keys."""

ROOT_KEYS = frozenset({*GROUPS, *TOP_LEVEL, "run_dir", "init_from", "zoo", "hydra"})
"""Every root key cardio reads (``configs/train.yaml`` and its groups; ``tests/test_validation.py`` keeps them in
step). Another root key, say ``+seeed=3``, is read by nothing: :func:`validate` warns, naming the closest."""

EXTRA_KEYS: dict[str, dict[str, Any]] = {"runner": {"eval_num_envs": int}}
"""Keys a group holds beyond its target's arguments (``cardio.build`` consumes them), with their types."""

_SKIP = {"_target_", "_partial_", "_convert_", "_recursive_", "_args_"}


def _closed(lo: float, hi: float) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: lo <= v <= hi), f"a number in [{lo:g}, {hi:g}]"


def _at_least(lo: float, what: str = "an integer") -> tuple[Callable[[Any], bool], str]:
    return (lambda v: v >= lo), f"{what} >= {lo:g}"


_POSITIVE = (lambda v: v > 0), "a number > 0"
_NON_NEGATIVE = (lambda v: v >= 0), "a number >= 0"
_UNIT = _closed(0, 1)

RANGES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "seed": ((lambda v: v >= 0), "a non-negative integer (or null for a random seed)"),
    "torch_threads": _at_least(1),
    # agents (any agent with a key of that name)
    "agent.lr": _POSITIVE,
    "agent.gamma": _UNIT,
    "agent.gae_lambda": _UNIT,
    "agent.tau": ((lambda v: 0 < v <= 1), "a number in (0, 1]"),
    "agent.exploration_fraction": _UNIT,
    "agent.exploration_initial_eps": _UNIT,
    "agent.exploration_final_eps": _UNIT,
    "agent.max_grad_norm": _POSITIVE,
    "agent.batch_size": _at_least(1),
    "agent.n_epochs": _at_least(1),
    "agent.clip_range": _POSITIVE,
    "agent.clip_range_vf": _POSITIVE,
    "agent.ent_coef": _NON_NEGATIVE,
    "agent.vf_coef": _NON_NEGATIVE,
    "agent.hidden_sizes": _at_least(1, "integers"),
    "agent.gru_size": _at_least(1),
    "agent.burn_in": _at_least(0),
    "agent.target_update_interval": _at_least(1),
    "agent.n_critics": _at_least(1),
    "agent.policy_delay": _at_least(1),
    "agent.target_policy_noise": _NON_NEGATIVE,
    "agent.target_noise_clip": _NON_NEGATIVE,
    "agent.noise_std": _NON_NEGATIVE,
    "agent.rms_prop_eps": _POSITIVE,
    "agent.rms_prop_alpha": _UNIT,
    # buffers
    "buffer.capacity": _at_least(1),
    "buffer.n_step": _at_least(1),
    "buffer.gamma": _UNIT,
    "buffer.alpha": _NON_NEGATIVE,
    "buffer.beta": _UNIT,
    "buffer.eps": _POSITIVE,
    "buffer.seq_len": _at_least(1),
    "buffer.burn_in": _at_least(0),
    # runner and schedules
    "runner.total_steps": ((lambda v: v >= 1), "a positive integer"),
    "runner.log_interval": _at_least(1),
    "runner.eval_freq": _at_least(0, "an integer (0 = final evaluation only)"),
    "runner.eval_episodes": _at_least(1),
    "runner.eval_num_envs": _at_least(1),
    "runner.stats_window": _at_least(1),
    "runner.checkpoint_freq": _at_least(0, "an integer (0 = final checkpoint only)"),
    "runner.schedule.learning_starts": _at_least(0),
    "runner.schedule.train_freq": _at_least(1),
    "runner.schedule.gradient_steps": ((lambda v: v >= 1 or v == -1), "an integer >= 1, or -1 (one per env step)"),
    "runner.schedule.batch_size": _at_least(1),
    "runner.schedule.n_steps": _at_least(1),
    "runner.schedule.train_freq_unit": ((lambda v: v in ("step", "episode")), "'step' or 'episode'"),
    # env and logger
    "env.num_envs": _at_least(1),
    "logger.sinks.console.every": _at_least(1),
    "logger.sinks.tensorboard.flush_secs": _POSITIVE,
}
"""Range rules by dotted key; a key that is absent from a config is not checked."""


# ------------------------------------------------------------------------------------------------ entry
def validate(cfg: DictConfig, *, check_env: bool = True) -> DictConfig:
    """Check ``cfg`` (see the module docstring) and convert integral numbers of integer keys in place.

    Args:
        cfg: a composed training config (``scripts/train.py``'s, a sweep trial's, or a run's ``config.yaml``).
        check_env: also make one env copy to check the agent's spaces and the buffer's memory (step 3).

    Returns:
        ``cfg`` itself, with e.g. ``runner.total_steps=1e6`` turned into the integer 1000000.

    Raises:
        ConfigError: the first problem found; the message names the key, the value and what would be right.
        SpaceError: the agent does not take the env's observation or action space.
    """
    plain = _resolved(cfg)
    for key in sorted(set(plain) - ROOT_KEYS):  # a user's own bookkeeping key is legal, a typo is not silent
        close = difflib.get_close_matches(key, sorted(ROOT_KEYS), n=1)
        warnings.warn(
            f"{key}={plain[key]!r}: cardio reads no root key {key!r}, it is only saved in config.yaml"
            + (f" (did you mean {close[0]}?)" if close else ""),
            stacklevel=1,  # one place: shown once, though a command validates more than once
        )
    for key, hint in TOP_LEVEL.items():
        if key in plain:
            _set(cfg, [key], _check_type(key, plain[key], hint))
    for group in GROUPS:
        node = plain.get(group)
        if not isinstance(node, dict):
            raise ConfigError(f"{group}={node!r}: every training config needs a {group} group (e.g. {group}=...)")
        _check_node(cfg, [group], node, EXTRA_KEYS.get(group, {}))
    plain = _resolved(cfg)  # with the conversions
    _check_ranges(plain)
    _check_rollout(plain)
    _check_replay(plain)
    resume = plain.get("resume")
    if resume is not None and not Path(str(resume)).expanduser().exists():
        raise ConfigError(
            f"resume={resume!r}: no such run dir or checkpoint file; pass a run dir written by scripts/train.py "
            f"(it holds last.ckpt and config.yaml) or a .ckpt file"
        )
    from cardio.envs.factory import check_env_id

    check_env_id(str(plain["env"]["id"]))
    if plain.get("device") is not None:
        _set(cfg, ["device"], resolve_device(str(plain["device"]), str(plain["agent"]["_target_"])))
    check_env_copies(plain["env"])
    if check_env:
        observation_space, action_space = env_spaces(plain["env"])
        check_agent_spaces(plain, observation_space, action_space)
        check_memory(plain, observation_space, action_space)
        check_native_vectorization(plain["env"])
    return cfg


def _resolved(cfg: DictConfig) -> dict[str, Any]:
    """The config as a plain resolved dict; ``run_dir`` stays a placeholder where Hydra has not set it yet."""
    work = copy.deepcopy(cfg)
    with open_dict(work):
        work.pop("hydra", None)
        try:
            OmegaConf.select(work, "run_dir", throw_on_resolution_failure=True)
        except OmegaConfBaseException:
            work.run_dir = "<run_dir>"
    try:
        plain = OmegaConf.to_container(work, resolve=True)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None) or "config"
        raise ConfigError(f"{key}: {exc.msg if hasattr(exc, 'msg') else exc}".splitlines()[0]) from exc
    assert isinstance(plain, dict)
    return plain  # type: ignore[return-value]


def _set(cfg: DictConfig, path: list[str], value: Any) -> None:
    """Write a converted value back, unless the key is an interpolation (its source is converted instead)."""
    parent = OmegaConf.select(cfg, ".".join(path[:-1])) if len(path) > 1 else cfg
    if not isinstance(parent, DictConfig) or path[-1] not in parent:
        return
    if OmegaConf.is_interpolation(parent, path[-1]):
        return
    current = parent[path[-1]]
    current = OmegaConf.to_container(current) if OmegaConf.is_config(current) else current
    if repr(current) != repr(value):  # repr: 100.0 == 100, but the config must say 100
        parent[path[-1]] = value


# ------------------------------------------------------------------------------------------------ types
def _check_node(cfg: DictConfig, path: list[str], node: dict[str, Any], extra: Mapping[str, Any]) -> None:
    """Check the keys of a ``_target_`` node against the annotations of what it names, recursively."""
    where = ".".join(path)
    target = node.get("_target_")
    if not isinstance(target, str):
        raise ConfigError(f"{where}._target_={target!r}: expected the import path of a class or function")
    from hydra.utils import get_object

    try:
        obj = get_object(target)
    except Exception as exc:
        raise ConfigError(f"{where}._target_={target!r} cannot be imported: {str(exc).splitlines()[0]}") from exc
    hints, accepted, open_ended = _signature(obj)
    for key, value in node.items():
        if key in _SKIP:
            continue
        key_path = [*path, key]
        if key in extra:
            _set(cfg, key_path, _check_type(".".join(key_path), value, extra[key]))
            continue
        if key not in accepted and not open_ended:
            raise ConfigError(
                f"{'.'.join(key_path)}={value!r}: {target} takes no argument {key!r}; "
                f"its keys are: {', '.join(sorted(accepted)) or 'none'}"
            )
        if isinstance(value, dict) and "_target_" in value:
            _check_node(cfg, key_path, value, {})
        elif isinstance(value, dict) and key == "sinks":  # the logger's named sinks
            for name, sink in value.items():
                if isinstance(sink, dict) and "_target_" in sink:
                    _check_node(cfg, [*key_path, str(name)], sink, {})
        elif key in hints:
            _set(cfg, key_path, _check_type(".".join(key_path), value, hints[key]))


def _signature(obj: Any) -> tuple[dict[str, Any], set[str], bool]:
    """``(type hints, accepted keyword names, takes **kwargs beyond them)`` of a class or function."""
    hints: dict[str, Any] = {}
    accepted: set[str] = set()
    # a class: its own __init__, then its parents' while each passes **kwargs on (PrioritizedBuffer's options)
    mro = obj.__mro__ if isinstance(obj, type) else ()
    funcs = [vars(c)["__init__"] for c in mro if "__init__" in vars(c) and c is not object] if mro else [obj]
    open_ended = True
    for fn in funcs:
        try:
            params = inspect.signature(fn).parameters
        except (TypeError, ValueError):
            return {}, set(), True
        accepted |= {n for n, p in params.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
        try:
            hints = {**typing.get_type_hints(fn), **hints}
        except Exception:  # an annotation naming something only imported for type checking
            pass
        if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            open_ended = False
            break
    if isinstance(obj, type) and dataclasses.is_dataclass(obj):
        try:
            hints = {**typing.get_type_hints(obj), **hints}
        except Exception:
            pass
    accepted.discard("self")
    return hints, accepted, open_ended


def _describe(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if hint is type(None):
        return "null"
    if hint is int:
        return "an integer (1e6 is fine, 2.5 is not)"
    if hint is float:
        return "a number"
    if hint is bool:
        return "true or false"
    if hint is str:
        return "a string"
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(hint))
    if origin in (list, tuple, Sequence) or hint in (list, tuple):
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        return f"a list of ({_describe(args[0])})" if args else "a list"
    if origin in (dict, Mapping) or hint is dict:
        return "a mapping"
    return getattr(hint, "__name__", str(hint))


class _Mismatch(Exception):
    pass


def _coerce(value: Any, hint: Any) -> Any:
    """``value`` as the type ``hint`` says (integral floats become ints), or :class:`_Mismatch`."""
    origin = typing.get_origin(hint)
    if hint is Any or hint is object:
        return value
    if hint is type(None):
        if value is None:
            return None
        raise _Mismatch
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch
    if hint is int:
        if isinstance(value, bool):
            raise _Mismatch
        if isinstance(value, int):
            return value
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            return int(value)
        raise _Mismatch
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value
        raise _Mismatch
    if hint is str:
        if isinstance(value, str):
            return value
        raise _Mismatch
    if origin is typing.Literal:
        if value in typing.get_args(hint):
            return value
        raise _Mismatch
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(hint):
            try:
                return _coerce(value, arg)
            except _Mismatch:
                continue
        raise _Mismatch
    if origin in (list, tuple, Sequence) or hint in (list, tuple):
        if not isinstance(value, list | tuple):
            raise _Mismatch
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        if not args or len(set(args)) > 1:
            return value
        return [_coerce(v, args[0]) for v in value]
    if origin in (dict, Mapping) or hint is dict:
        if isinstance(value, dict):
            return value
        raise _Mismatch
    return value  # callables, classes, protocols: instantiate decides


def _check_type(where: str, value: Any, hint: Any) -> Any:
    try:
        return _coerce(value, hint)
    except _Mismatch:
        raise ConfigError(f"{where}={value!r}: expected {_describe(hint)}") from None


# ------------------------------------------------------------------------------------------------ ranges
def _lookup(plain: Mapping[str, Any], key: str) -> tuple[bool, Any]:
    node: Any = plain
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _check_ranges(plain: Mapping[str, Any]) -> None:
    for key, (ok, expected) in RANGES.items():
        found, value = _lookup(plain, key)
        if not found or value is None:
            continue
        values = value if isinstance(value, list | tuple) else [value]
        for v in values:
            if isinstance(v, str) and key == "agent.ent_coef":  # SAC's "auto" / "auto_0.1"
                continue
            if key == "runner.schedule.train_freq_unit":  # a word, not a number
                if not ok(v):
                    raise ConfigError(f"{key}={value!r}: expected {expected}")
                continue
            if isinstance(v, bool) or not isinstance(v, int | float) or math.isnan(v) or not ok(v):
                raise ConfigError(f"{key}={value!r}: out of range; expected {expected}")


def _divisors_near(n: int, target: int) -> list[int]:
    divisors = [d for d in range(1, n + 1) if n % d == 0]
    return sorted(divisors, key=lambda d: (abs(d - target), d))[:3]


def _check_rollout(plain: Mapping[str, Any]) -> None:
    """PPO-style agents split each rollout of ``n_steps * num_envs`` transitions into minibatches of
    ``agent.batch_size``: it must divide the rollout, or each epoch would end on a smaller minibatch. A batch
    size of the rollout or more is one minibatch of the whole rollout (SB3's meaning; rl-zoo's PPO
    MountainCarContinuous asks for 256 from a rollout of 8)."""
    has_n, n_steps = _lookup(plain, "runner.schedule.n_steps")
    has_b, batch = _lookup(plain, "agent.batch_size")
    if not (has_n and has_b) or not isinstance(batch, int) or not isinstance(n_steps, int):
        return
    num_envs = int(plain["env"].get("num_envs", 1))
    rollout = n_steps * num_envs
    if batch < rollout and rollout % batch:
        near = ", ".join(str(d) for d in _divisors_near(rollout, batch))
        raise ConfigError(
            f"agent.batch_size={batch}: must divide the rollout runner.schedule.n_steps * env.num_envs = "
            f"{n_steps} * {num_envs} = {rollout}; e.g. agent.batch_size={near.split(', ')[0]} (divisors near "
            f"{batch}: {near}), or change runner.schedule.n_steps"
        )


def _check_replay(plain: Mapping[str, Any]) -> None:
    """An off-policy schedule samples ``batch_size`` from the buffer: it must be able to hold that many (the
    runner refuses the same at construction; here it is caught before any output). ``learning_starts`` below the
    batch size is legal (rl-zoo uses 0): the first update waits until a batch is stored."""
    has_b, batch = _lookup(plain, "runner.schedule.batch_size")
    if not has_b or not isinstance(batch, int):
        return
    capacity = plain["buffer"].get("capacity")
    if isinstance(capacity, int) and batch > capacity:
        raise ConfigError(
            f"runner.schedule.batch_size={batch}: exceeds buffer.capacity={capacity}; lower the batch size or "
            f"raise buffer.capacity"
        )

"""Search spaces written next to the config keys they set, and how a sampled value becomes a Hydra override.

A sweep file's ``params`` maps a config key (``agent.lr``) or a config group (``buffer``) to one spec::

    params:
      agent.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}   # log-uniform float
      agent.gamma: {type: float, low: 0.9, high: 0.999}              # uniform float (optional `step`)
      runner.schedule.train_freq: {type: int, low: 1, high: 16, log: true}  # int (optional `step` or `log`)
      agent.hidden_sizes: {type: categorical, choices: [[64, 64], [256, 256]]}
      buffer: {type: categorical, choices: [circular, prioritized]}  # a config group option

Each trial turns its values into overrides (``agent.lr=0.00123``, ``agent.hidden_sizes=[256,256]``,
``buffer=prioritized``) and composes ``train.yaml`` with them, exactly like a command line would.
Optuna stores categorical choices only as None/bool/int/float/str, so list or dict choices are kept in the
study as their JSON text and decoded back.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import optuna

from cardio.errors import ConfigError

KINDS = ("float", "int", "categorical")


class SearchSpaceError(ConfigError):
    """A ``params`` entry of a sweep file that cannot be sampled; the message names the key and the fix."""


@dataclass(frozen=True)
class Param:
    """One searched config key."""

    key: str
    """Config key (``agent.lr``) or config group (``buffer``) the value is written to."""
    kind: str
    """``float``, ``int`` or ``categorical``."""
    low: float | None = None
    """Lower bound (inclusive) of a float or int."""
    high: float | None = None
    """Upper bound (inclusive) of a float or int."""
    log: bool = False
    """Sample uniformly in log space (bounds must be > 0)."""
    step: float | None = None
    """Grid spacing of a float or int (not with ``log``)."""
    choices: tuple[Any, ...] = ()
    """Values of a categorical; lists and dicts are allowed."""

    def suggest(self, trial: optuna.Trial) -> Any:
        """Draw this parameter's value from the trial (Optuna records it under ``self.key``)."""
        if self.kind == "float":
            assert self.low is not None and self.high is not None
            return trial.suggest_float(self.key, self.low, self.high, log=self.log, step=self.step)
        if self.kind == "int":
            assert self.low is not None and self.high is not None
            step = int(self.step) if self.step is not None else 1
            return trial.suggest_int(self.key, int(self.low), int(self.high), log=self.log, step=step)
        stored = trial.suggest_categorical(self.key, [_to_optuna(c) for c in self.choices])
        return self.decode(stored)

    def decode(self, stored: Any) -> Any:
        """The config value for a value as Optuna stores it (JSON text of list/dict choices decoded)."""
        if self.kind == "categorical" and any(isinstance(c, list | dict) for c in self.choices):
            for choice in self.choices:
                if _to_optuna(choice) == stored:
                    return choice
        return stored

    def encode(self, value: Any) -> Any:
        """``value`` as Optuna stores it (list/dict choices as JSON text); inverse of :meth:`decode`."""
        return _to_optuna(list(value) if isinstance(value, tuple) else value) if self.kind == "categorical" else value

    def contains(self, value: Any) -> bool:
        """Whether ``value`` is one this parameter can take (used to queue the base config as a trial)."""
        if self.kind == "categorical":
            value = list(value) if isinstance(value, tuple) else value
            return any(value == c for c in self.choices)
        assert self.low is not None and self.high is not None
        return isinstance(value, int | float) and not isinstance(value, bool) and self.low <= value <= self.high

    def override(self, value: Any) -> str:
        """The Hydra command-line override that sets ``value``, e.g. ``agent.hidden_sizes=[256,256]``."""
        return f"{self.key}={format_value(value)}"


def _to_optuna(choice: Any) -> Any:
    return json.dumps(choice, separators=(",", ":")) if isinstance(choice, list | dict) else choice


def format_value(value: Any) -> str:
    """A value in Hydra's override grammar: floats at full precision, lists/dicts without spaces."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{format_value(v)}" for k, v in value.items()) + "}"
    return str(value)


def parse_space(params: Mapping[str, Any], source: str = "sweep.params") -> dict[str, Param]:
    """Check every spec of a sweep file's ``params`` and return them as :class:`Param` by key.

    Args:
        params: ``{config key: {type: ..., ...}}`` as read from ``configs/sweep/<name>.yaml``.
        source: where the mapping came from, quoted in error messages.

    Raises:
        SearchSpaceError: unknown ``type``, missing or inverted bounds, ``log`` with a bound <= 0, ``log``
            together with ``step``, an empty ``choices``, or an unknown field; the message names the key.
    """
    space: dict[str, Param] = {}
    for key, spec in params.items():
        where = f"{source}.{key}"
        if not isinstance(spec, Mapping):
            raise SearchSpaceError(
                f"{where} must be a mapping like {{type: float, low: 1e-4, high: 1e-2, log: true}}, got {spec!r}"
            )
        spec = dict(spec)
        kind = spec.pop("type", None)
        if kind not in KINDS:
            raise SearchSpaceError(f"{where}.type must be one of {', '.join(KINDS)}, got {kind!r}")
        allowed = {"choices"} if kind == "categorical" else {"low", "high", "log", "step"}
        unknown = set(spec) - allowed
        if unknown:
            raise SearchSpaceError(
                f"{where}: unknown field(s) {sorted(unknown)} for type {kind}; allowed: {sorted(allowed)}"
            )
        if kind == "categorical":
            choices = tuple(spec.get("choices") or ())
            if not choices:
                raise SearchSpaceError(f"{where}.choices must list at least one value")
            space[key] = Param(key, kind, choices=choices)
            continue
        low, high = spec.get("low"), spec.get("high")
        if low is None or high is None:
            raise SearchSpaceError(f"{where} needs both low and high, got low={low!r} high={high!r}")
        low, high = float(low), float(high)
        if not low <= high:
            raise SearchSpaceError(f"{where}: low={low} is above high={high}")
        log, step = bool(spec.get("log", False)), spec.get("step")
        if log and low <= 0:
            raise SearchSpaceError(f"{where}: log=true needs low > 0, got low={low}")
        if log and step is not None:
            raise SearchSpaceError(f"{where}: choose log=true or a step, not both (Optuna refuses the pair)")
        if kind == "int" and (low != int(low) or high != int(high)):
            raise SearchSpaceError(f"{where}: an int range needs whole bounds, got low={low} high={high}")
        space[key] = Param(key, kind, low=low, high=high, log=log, step=None if step is None else float(step))
    return space

"""Non-finite guard: stop training at the first NaN or infinity, naming it, before it reaches a checkpoint.

The runner (``runner.check_finite``, on by default) calls these at three places, cheap enough to leave on:

* every update: the float fields of the batch about to be learnt from (``obs``, ``reward``, ...: a NaN from the
  env is caught when it is first sampled, before it reaches a gradient), then the update's metrics (floats);
* every log and before every checkpoint: the agent's ``state_dict`` leaves (parameters, optimiser moments,
  schedule values), so a checkpoint is never written after the weights went non-finite;
* when a metric goes non-finite: the parameters too, so the message says whether the weights are gone as well.

The first failure raises :class:`NonFiniteError` with one line naming what (``metric train/loss``,
``batch field obs``, ``parameter q_net/0.weight``) and the env step. ``scripts/train.py`` prints that line and
exits with 1; the sweep driver prunes the trial with it as the reason.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from cardio.pytree import named_leaves


class NonFiniteError(FloatingPointError):
    """Training produced a NaN or an infinity; the message names the value and the env step.

    Args:
        what: e.g. ``"metric train/loss = nan"``, ``"batch field obs"``, ``"parameter q_net/0.weight"``.
        env_step: env steps collected when it was found.
        checkpoint: the last checkpoint written before it (left untouched), or ``None``.
    """

    def __init__(self, what: str, env_step: int, checkpoint: str | None = None) -> None:
        kept = f"the last good checkpoint {checkpoint} is kept" if checkpoint else "no checkpoint was written"
        super().__init__(
            f"non-finite {what} at env step {env_step}: training stopped, {kept} "
            f"(runner.check_finite=false turns this check off)"
        )
        self.what = what
        self.env_step = env_step
        self.checkpoint = checkpoint


def _is_tensor(x: Any) -> bool:
    return type(x).__module__.startswith("torch") and hasattr(x, "isfinite")


def _finite(leaf: Any) -> bool:
    """Whether every value of a float leaf is finite (integer, bool and string leaves always are)."""
    if isinstance(leaf, float):
        return math.isfinite(leaf)
    if _is_tensor(leaf):
        return not leaf.is_floating_point() or bool(leaf.detach().isfinite().all())
    if isinstance(leaf, np.ndarray | np.generic) or hasattr(leaf, "__array__"):
        array = np.asarray(leaf)
        return array.dtype.kind not in "fc" or bool(np.isfinite(array).all())
    return True


UNDEFINED_OK = frozenset({"train/explained_variance"})
"""Metrics that are NaN by definition in a healthy run: explained variance is undefined (NaN, as in SB3) when
the rollout's returns have no variance."""


def bad_metric(metrics: Mapping[str, Any]) -> str | None:
    """``"metric <key> = <value>"`` for the first non-finite metric (outside :data:`UNDEFINED_OK`), else ``None``.

    Args:
        metrics: an update's metrics (arrays such as ``td_error`` are checked too).
    """
    for key, value in metrics.items():
        if key not in UNDEFINED_OK and not _finite(value):
            shown = value if isinstance(value, float) else "non-finite entries"
            return f"metric {key} = {shown}"
    return None


def bad_field(batch: Any) -> str | None:
    """``"batch field <path>"`` for the first float leaf of a batch holding a NaN or infinity, else ``None``.

    Args:
        batch: a sampled batch or rollout (a pytree of arrays).
    """
    if isinstance(batch, dict):  # the usual flat batch: no pytree walk (this runs on every update)
        for name, leaf in batch.items():
            if isinstance(leaf, np.ndarray):
                if leaf.dtype.kind == "f" and not np.isfinite(leaf).all():
                    return f"batch field {name}"
            elif (inner := bad_field(leaf)) is not None:
                return inner.replace("batch field ", f"batch field {name}/", 1)
        return None
    for name, leaf in named_leaves(batch).items():
        if not _finite(leaf):
            return f"batch field {name}"
    return None


def _walk(tree: Any, prefix: str) -> str | None:
    if isinstance(tree, Mapping) or isinstance(tree, list | tuple):
        items = tree.items() if isinstance(tree, Mapping) else enumerate(tree)
        for key, value in items:
            found = _walk(value, f"{prefix}/{key}" if prefix else str(key))
            if found is not None:
                return found
        return None
    return None if _finite(tree) else prefix


def bad_parameter(agent: Any) -> str | None:
    """``"parameter <path>"`` for the first non-finite leaf of ``agent.state_dict()``, else ``None``.

    Args:
        agent: anything with ``state_dict()`` (torch modules, optimisers, numpy arrays, floats are checked).
    """
    path = _walk(agent.state_dict(), "")
    return None if path is None else f"parameter {path}"


class FiniteGuard:
    """The runner's checks (module docstring) in one place: each raises :class:`NonFiniteError` naming the value,
    the env step and the last good checkpoint; none runs when the guard is off (``runner.check_finite=false``).

    Args:
        enabled: whether to check.
        where: ``() -> (env step, last checkpoint or None)`` for the message.
    """

    def __init__(self, enabled: bool, where: Any) -> None:
        self.enabled = bool(enabled)
        self.where = where

    def found(self, bad: str | None) -> None:
        """Raise for ``bad`` (a description from the ``bad_*`` functions); ``None``: all finite."""
        if bad is not None:
            env_step, checkpoint = self.where()
            raise NonFiniteError(bad, env_step, None if checkpoint is None else str(checkpoint))

    def batch(self, batch: Any) -> None:
        """The float fields of a batch about to be learnt from."""
        if self.enabled:
            self.found(bad_field(batch))

    def update(self, metrics: Mapping[str, Any], agent: Any) -> None:
        """An update's metrics; when one is non-finite the message says whether the parameters went too."""
        if self.enabled and (bad := bad_metric(metrics)) is not None:
            self.found(f"{bad} ({bad_parameter(agent) or 'parameters still finite'})")

    def parameters(self, agent: Any) -> None:
        """The agent's ``state_dict`` leaves (before a log or a checkpoint)."""
        if self.enabled:
            self.found(bad_parameter(agent))

"""The protocol every schedule meets (see the package docstring)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from cardio.runner import Runner


@runtime_checkable
class Schedule(Protocol):
    """When to collect and when to learn; :meth:`step` is one unit of training."""

    def check(self, runner: Runner) -> int:
        """Refuse what cannot work with ``runner``; return the env steps one :meth:`step` collects."""
        ...

    def step(self, runner: Runner) -> None:
        """Collect through ``runner.collect`` and learn through ``runner.learn``."""
        ...

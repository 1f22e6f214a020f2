"""The protocol every schedule meets, and the part of the runner a schedule may use (see the package docstring)."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from cardio.errors import ScheduleError
from cardio.gatherer import Tally, Until

__all__ = ["Schedule", "ScheduleError", "Trainer"]


class Trainer(Protocol):
    """What a schedule sees of the runner that drives it (:class:`cardio.runner.Runner` is one): the parts,
    the clock, and the two calls a unit of training is made of, :meth:`collect` and :meth:`learn`."""

    agent: Any
    buffer: Any
    num_envs: int
    total_steps: int
    updates: int

    @property
    def env_steps(self) -> int:
        """Transitions collected so far (all envs together)."""
        ...

    def collect(
        self,
        steps: int | None = None,
        *,
        random_until: int = 0,
        until: Until | None = None,
        store_normalized: bool = False,
    ) -> Tally:
        """Training-env vector steps into the buffer (the one collection path)."""
        ...

    def learn(self, batch: Any, indices: np.ndarray | None = None) -> dict[str, Any]:
        """One agent update on ``batch`` (replay priorities of ``indices`` follow its ``td_error``)."""
        ...

    def normalized(self, batch: Any) -> Any:
        """``batch`` as the agent must see it (the runner's normaliser, if any)."""
        ...

    def vector_steps_left(self, limit: int) -> int:
        """``limit`` vector steps, cut short at the run's end."""
        ...


@runtime_checkable
class Schedule(Protocol):
    """When to collect and when to learn; :meth:`step` is one unit of training."""

    def check(self, runner: Trainer) -> int:
        """Refuse what cannot work with ``runner``; return the env steps one :meth:`step` collects."""
        ...

    def step(self, runner: Trainer) -> None:
        """Collect through ``runner.collect`` and learn through ``runner.learn``."""
        ...

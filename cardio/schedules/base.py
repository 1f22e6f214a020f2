"""The protocol every schedule meets, and the part of the runner a schedule may use (see the package docstring)."""

from __future__ import annotations

import math
import warnings
from typing import Any, Protocol, runtime_checkable

import numpy as np

from cardio.agents.base import Agent
from cardio.errors import ScheduleError
from cardio.gatherer import Tally, Until

__all__ = ["Schedule", "ScheduleError", "Trainer", "check_schedule"]


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


def check_schedule(runner: Any) -> None:
    """Refuse option combinations of a runner's agent, buffer, env and schedule that cannot work (one
    :class:`ScheduleError` naming the keys and values); warn about legal but surprising ones (a ``total_steps`` that
    whole vector steps or update phases cannot hit)."""
    if not isinstance(runner.agent, Agent):
        raise ScheduleError(f"agent {type(runner.agent).__name__} lacks act/update/state_dict/load_state_dict")
    # an offline buffer's streams are the dataset's episodes or segments, not env copies
    if runner.buffer.num_envs != runner.num_envs and not runner.counts_updates:
        raise ScheduleError(
            f"buffer has num_envs={runner.buffer.num_envs} but the env has {runner.num_envs} (env.num_envs)"
        )
    if not isinstance(runner.schedule, Schedule):
        raise ScheduleError(
            f"runner.schedule must be a schedule with check() and step() (cardio.schedules), got {runner.schedule!r}"
        )
    chunk = runner.schedule.check(runner)
    if runner.counts_updates:  # the offline clock: whole update phases
        if runner.total_steps % chunk:
            actual = math.ceil(runner.total_steps / chunk) * chunk
            warnings.warn(
                f"runner.total_steps={runner.total_steps} is not a multiple of the {chunk} updates one "
                f"runner.step() makes; {actual} updates will run",
                stacklevel=4,  # the code that built the runner,
            )
    # A schedule that collects cuts its last rollout / collection phase to the steps left (vector_steps_left),
    # so only a total that whole vector steps cannot hit runs over, by less than one vector step.
    elif runner.total_steps % runner.num_envs:
        actual = math.ceil(runner.total_steps / runner.num_envs) * runner.num_envs
        warnings.warn(
            f"runner.total_steps={runner.total_steps} is not a multiple of env.num_envs={runner.num_envs} (one "
            f"vector step is {runner.num_envs} env steps); {actual} env steps will run",
            stacklevel=4,  # the code that built the runner,
        )

"""Schedules: when a runner collects and when its agent learns, one small module each.

A schedule is a dataclass of its knobs (SB3 units, so rl-zoo numbers carry over) with two methods:

``check(runner) -> int``
    Refuse option combinations that cannot work with this runner's env, buffer and agent (raising
    :class:`~cardio.runner.ScheduleError` naming the keys and values); return the env steps one ``step`` collects
    (offline: the updates it makes; such a schedule sets ``clock = "updates"`` and the runner counts updates).
``step(runner) -> None``
    One unit of training: collect through ``runner.collect`` and learn through ``runner.learn``.

The :class:`~cardio.runner.Runner` keeps the loop, evaluation and persistence; each schedule's logic lives here.
"""

from cardio.schedules.base import Schedule
from cardio.schedules.off_policy import OffPolicySchedule
from cardio.schedules.offline import OfflineSchedule
from cardio.schedules.on_policy import OnPolicySchedule

__all__ = ["OffPolicySchedule", "OfflineSchedule", "OnPolicySchedule", "Schedule"]

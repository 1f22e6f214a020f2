"""On-policy schedule: fill a rollout of ``n_steps`` transitions per env, hand all of it to the agent.

The rollout buffer holds ``n_steps x num_envs`` transitions (``cardio.build`` sizes it); epochs and minibatches
are the agent's business. Under NEXT_STEP autoreset an env loses one vector step per episode end (the masked
reset row), so collection goes on until every env's stream is full, and full streams drop their extra rows.
"""

from __future__ import annotations

from dataclasses import dataclass

from cardio.errors import ScheduleError
from cardio.gatherer import Until
from cardio.schedules.base import Trainer


@dataclass
class OnPolicySchedule:
    """Rollout length for on-policy agents (epochs and minibatches are the agent's)."""

    n_steps: int = 2048
    """Vector steps per rollout: the rollout buffer holds ``n_steps x num_envs`` transitions."""

    def check(self, runner: Trainer) -> int:
        """Refuse a rollout buffer of the wrong size."""
        if self.n_steps <= 0:
            raise ScheduleError(f"runner.schedule.n_steps must be positive, got {self.n_steps}")
        expected = self.n_steps * runner.num_envs
        if runner.buffer.capacity != expected:
            raise ScheduleError(
                f"on-policy rollout buffer needs capacity n_steps*num_envs = {self.n_steps}*{runner.num_envs} "
                f"= {expected}, got buffer.capacity={runner.buffer.capacity}"
            )
        return expected

    def step(self, runner: Trainer) -> None:
        """Clear the rollout buffer, fill it, and run one agent update on the whole ``[T, N]`` rollout."""
        buffer = runner.buffer
        buffer.clear()
        # the last rollout of a run is cut to the steps left: an update on fewer rows, not steps beyond the budget
        rows = runner.vector_steps_left(buffer.slots_per_env)
        # What the agent saw is stored: normalised with each step's statistics, like the stored log_prob and value.
        # NEXT_STEP envs lag by their skipped reset steps; streams already full drop their extra rows.
        runner.collect(until=Until(rows=rows), store_normalized=True)
        runner.learn(buffer.as_rollout(rows))

"""Off-policy schedule: collect ``train_freq`` vector steps into the replay buffer, then learn.

Units are SB3's: ``train_freq`` counts vector steps (N env steps each); ``learning_starts`` and ``batch_size``
count transitions. Until ``learning_starts`` env steps have been collected the actions are uniform-random; from
then on each phase runs ``gradient_steps`` updates on sampled batches (``-1``: one per env step collected).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cardio.pytree import tree_index

if TYPE_CHECKING:
    from cardio.runner import Runner


@dataclass
class OffPolicySchedule:
    """When to collect and when to learn (SB3 units)."""

    learning_starts: int = 100
    """Env steps of uniform-random actions before the first update."""
    train_freq: int = 4
    """Vector steps collected between update phases (N env steps each)."""
    gradient_steps: int = 1
    """Updates per phase; -1 = as many as env steps collected in the phase."""
    batch_size: int = 32
    """Transitions per update."""

    def check(self, runner: Runner) -> int:
        """Refuse a batch the buffer can never hold or the first update could not fill."""
        from cardio.runner import ScheduleError

        if self.train_freq <= 0 or self.batch_size <= 0:
            raise ScheduleError(f"runner.schedule needs train_freq>0 and batch_size>0, got {self}")
        if self.batch_size > runner.buffer.capacity:
            raise ScheduleError(
                f"runner.schedule.batch_size={self.batch_size} exceeds buffer.capacity={runner.buffer.capacity}"
            )
        if self.learning_starts < self.batch_size:
            raise ScheduleError(
                f"runner.schedule.learning_starts={self.learning_starts} is below batch_size={self.batch_size}: "
                f"the first update would sample more than is stored; set learning_starts >= {self.batch_size}"
            )
        return self.train_freq * runner.num_envs

    def step(self, runner: Runner) -> None:
        """Collect ``train_freq`` vector steps, then run the phase's updates once past ``learning_starts``."""
        collected = 0
        phase = runner.vector_steps_left(self.train_freq)  # the run's last phase stops at total_steps
        for _ in range(phase):
            warmup = runner.env_steps < self.learning_starts
            transition, valid = runner.collect(random=warmup)
            runner.buffer.add(transition, valid)
            collected += int(valid.sum())
        if runner.env_steps <= self.learning_starts:
            return
        # a phase cut short at the end of the run earns its share of the updates (gradient steps per sample kept)
        n_updates = math.ceil(self.gradient_steps * phase / self.train_freq) if self.gradient_steps >= 0 else collected
        if n_updates == 0:
            return
        buffer = runner.buffer
        if hasattr(buffer, "update_priorities"):  # priorities change between updates: sample one by one
            for _ in range(n_updates):
                batch, indices = buffer.sample(self.batch_size)
                runner.learn(batch, indices)
        else:  # one gather for the whole phase
            batches, indices = buffer.sample(self.batch_size, num_batches=n_updates)
            for j in range(n_updates):
                runner.learn(tree_index(batches, j), indices[j])

"""Off-policy schedule: collect ``train_freq`` vector steps (or episodes) into the replay buffer, then learn.

Units are SB3's: ``train_freq`` counts vector steps (N env steps each), or finished episodes with
``train_freq_unit="episode"``; ``learning_starts`` and ``batch_size`` count transitions. Until ``learning_starts``
env steps have been collected the actions are uniform-random (an agent with ``act_at_warmup``, gSDE's
``use_sde_at_warmup``, explores with its own policy instead); from then on, once the buffer holds a batch, each
phase runs ``gradient_steps`` updates on sampled batches (``-1``: one per env step collected). The buffer stores
raw transitions; a runner normaliser applies to each sampled batch (``cardio/envs/normalize.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from cardio.errors import ScheduleError
from cardio.gatherer import Until
from cardio.pytree import tree_index
from cardio.schedules.base import Trainer


@dataclass
class OffPolicySchedule:
    """When to collect and when to learn (SB3 units)."""

    learning_starts: int = 100
    """Env steps of uniform-random actions before the first update; the first update also waits until the buffer
    holds ``batch_size`` transitions, so 0 (rl-zoo's value for some envs) is legal."""
    train_freq: int = 4
    """Vector steps (N env steps each) collected between update phases, or episodes with ``train_freq_unit``."""
    gradient_steps: int = 1
    """Updates per phase; -1 = as many as env steps collected in the phase."""
    batch_size: int = 32
    """Transitions per update."""
    train_freq_unit: str = "step"
    """``step``: ``train_freq`` counts vector steps; ``episode``: a phase lasts until ``train_freq`` episodes have
    ended, over all envs together (SB3's ``train_freq=(1, "episode")``)."""

    def check(self, runner: Trainer) -> int:
        """Refuse a batch the buffer can never hold, or an unknown ``train_freq_unit``."""
        if self.train_freq <= 0 or self.batch_size <= 0:
            raise ScheduleError(f"runner.schedule needs train_freq>0 and batch_size>0, got {self}")
        if self.batch_size > runner.buffer.capacity:
            raise ScheduleError(
                f"runner.schedule.batch_size={self.batch_size} exceeds buffer.capacity={runner.buffer.capacity}"
            )
        if self.train_freq_unit not in ("step", "episode"):
            raise ScheduleError(
                f"runner.schedule.train_freq_unit must be 'step' or 'episode', got {self.train_freq_unit!r}"
            )
        return self.train_freq * runner.num_envs if self.train_freq_unit == "step" else runner.num_envs

    def warming_up(self, runner: Trainer) -> bool:
        """Whether the next vector step takes uniform-random actions (before ``learning_starts``)."""
        return runner.env_steps < self.learning_starts and not getattr(runner.agent, "act_at_warmup", False)

    def updates_due(self, runner: Trainer, collected: int, phase: int) -> int:
        """Updates the phase just collected earns: 0 before ``learning_starts`` or while the buffer holds less than
        a batch, else ``gradient_steps`` (a phase of ``phase`` vector steps cut short at the end of the run earns
        its share; ``-1``: one per env step ``collected``). cardio/multiseed.py asks the same for all seeds."""
        # SB3 samples with replacement from fewer than a batch; cardio waits until a batch is stored
        if runner.env_steps <= self.learning_starts or len(runner.buffer) < self.batch_size:
            return 0
        if self.gradient_steps < 0:
            return collected
        if self.train_freq_unit == "step":
            return math.ceil(self.gradient_steps * phase / self.train_freq)
        return self.gradient_steps

    def step(self, runner: Trainer) -> None:
        """Collect ``train_freq`` vector steps (or episodes), then run the phase's updates once past
        ``learning_starts`` and once the buffer holds a batch. The run's last phase stops at ``total_steps``."""
        random_until = 0 if getattr(runner.agent, "act_at_warmup", False) else self.learning_starts  # as warming_up
        if self.train_freq_unit == "step":
            phase = runner.vector_steps_left(self.train_freq)
            collected = runner.collect(phase, random_until=random_until).written
        else:  # until train_freq episodes have ended; a phase ends with the run too (its updates still made, as SB3)
            phase = self.train_freq
            cut_at_end = runner.env_steps < runner.total_steps  # a step() called past total_steps (by hand) runs whole
            until = Until(learning_ends=phase, env_steps=runner.total_steps if cut_at_end else None)
            collected = runner.collect(random_until=random_until, until=until).written
        n_updates = self.updates_due(runner, collected, phase)
        if n_updates == 0:
            return
        buffer = runner.buffer
        if hasattr(buffer, "update_priorities"):  # priorities change between updates: sample one by one
            for _ in range(n_updates):
                batch, indices = buffer.sample(self.batch_size)
                runner.learn(runner.normalized(batch), indices)
        else:  # one gather for the whole phase
            batches, indices = buffer.sample(self.batch_size, num_batches=n_updates)
            for j in range(n_updates):
                runner.learn(runner.normalized(tree_index(batches, j)), indices[j])

"""Offline schedule: learn from a fixed dataset, never stepping the training env.

The buffer holds a Minari dataset (``cardio.datasets.minari.load_dataset``, one stream per episode or packed
segment; ``cardio.build`` loads it). Each ``step`` runs ``gradient_steps`` updates on uniform batches of
``batch_size`` transitions. The runner's clock is then the number of updates, not env steps: ``total_steps``,
``log_interval``, ``eval_freq`` and ``checkpoint_freq`` count gradient steps, and the agent's ``on_progress``
hears ``(updates, total_steps)``, so DQN-style target syncs (``target_update_interval``) count updates too.
Evaluation runs the agent on the eval env as in online runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cardio.errors import ScheduleError
from cardio.pytree import tree_index
from cardio.schedules.base import Trainer


@dataclass
class OfflineSchedule:
    """Updates per step and their batch; the dataset to learn from."""

    dataset: str = ""
    """Minari dataset id, e.g. ``cardio/CartPole-v1/mixed-v0`` (read from ``$MINARI_DATASETS_PATH``)."""
    gradient_steps: int = 1000
    """Updates per ``runner.step()`` (log, eval and checkpoint decisions happen between steps)."""
    batch_size: int = 256
    """Transitions per update, drawn uniformly from the dataset."""
    info_keys: list[str] = field(default_factory=list)
    """Dataset ``infos`` entries kept in every batch as ``info/<key>``."""
    pack: bool = True
    """Pack whole episodes back to back into streams (False: one stream per episode)."""

    clock = "updates"
    """What ``total_steps`` and the other intervals count (the runner reads it)."""

    def check(self, runner: Trainer) -> int:
        """Refuse a batch larger than the dataset or no updates; return the clock ticks one step makes."""
        if self.gradient_steps <= 0 or self.batch_size <= 0:
            raise ScheduleError(
                f"runner.schedule needs gradient_steps>0 and batch_size>0, got gradient_steps={self.gradient_steps}, "
                f"batch_size={self.batch_size}"
            )
        stored = len(runner.buffer)
        if self.batch_size > stored:
            raise ScheduleError(
                f"runner.schedule.batch_size={self.batch_size} exceeds the {stored} transitions of dataset "
                f"{self.dataset!r}; lower batch_size"
            )
        return self.gradient_steps

    def step(self, runner: Trainer) -> None:
        """``gradient_steps`` updates, each on its own uniform batch (gathered in one go)."""
        on_progress = getattr(runner.agent, "on_progress", None)
        batches, indices = runner.buffer.sample(self.batch_size, num_batches=self.gradient_steps)
        for j in range(self.gradient_steps):
            if on_progress is not None:  # schedules of the agent (target syncs) run on updates
                on_progress(runner.updates, runner.total_steps)
            runner.learn(tree_index(batches, j), indices[j])

"""The loop's clock: when the next log, evaluation and checkpoint are due, and the update metrics that the next
log averages. All counts are in the runner's clock (``Runner.steps``: env steps, or updates offline)."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field


@dataclass
class LoopState:
    """The loop's own bookkeeping: when the next log, evaluation and checkpoint are due, and the update metrics
    averaged into the next log (all in the runner's clock, :attr:`Runner.steps`)."""

    next_log: float
    next_eval: float
    next_ckpt: float
    run_start_steps: int
    run_started: float = field(default_factory=time.perf_counter)
    last_log_step: int = -1
    last_eval_step: int = -1
    train_sums: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    train_counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, key: str, total: float, count: int = 1) -> None:
        """``count`` updates' values of metric ``key`` summing to ``total``, for the next log's mean."""
        self.train_sums[key] += total
        self.train_counts[key] += count

    def train_means(self) -> dict[str, float]:
        out = {k: self.train_sums[k] / self.train_counts[k] for k in self.train_sums}
        self.train_sums.clear()
        self.train_counts.clear()
        return out

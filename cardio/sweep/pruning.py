"""The bridge from a running Runner to its Optuna trial: report each evaluation, stop bad or diverged runs.

:class:`TrialReporter` is a runner callback (``callbacks=[reporter]``) and a logger sink at once:

* ``on_eval(runner, metrics)``: ``trial.report(value, step)``; when ``trial.should_prune()`` says so, it
  records why in the trial's ``pruned_reason`` attribute and raises ``optuna.TrialPruned``, which leaves
  ``Runner.run`` at once.
* as a sink it sees every logged metric; a non-finite ``train/*`` value (a NaN loss) marks the run diverged,
  and the next ``on_step_end`` raises ``optuna.TrialPruned`` with ``pruned_reason = "diverged: ..."``.
  A non-finite evaluation does the same at once. Pruned, not failed, so the sampler learns the region is bad.

Steps reported are the scheduled evaluation steps (multiples of ``eval_freq``, then ``total_steps``), not the
env step the runner happened to reach (which depends on ``train_freq``); with several seeds per trial, seed
``i`` reports at ``i * total_steps + step``. So every trial reports the same step numbers and the pruner
compares like with like.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import optuna

from cardio.finite import UNDEFINED_OK
from cardio.runner import iqm

OBJECTIVES = ("final", "mean_eval")
AGGREGATES = ("mean", "iqm")
"""How a trial's value is made from its seeds' values (``sweep.seed_aggregate``)."""


def aggregate(values: list[float], how: str) -> float:
    """The mean, or the interquartile mean (the middle 50 %: one outlier seed of five moves it less), of
    ``values``; NaN when any value is NaN (a diverged seed)."""
    if how not in AGGREGATES:
        raise ValueError(f"sweep.seed_aggregate must be one of {AGGREGATES}, got {how!r}")
    if not values or not all(math.isfinite(v) for v in values):
        return float("nan")
    return float(np.mean(values)) if how == "mean" else iqm(values)


class TrialReporter:
    """Reports a run's evaluations to an Optuna trial and prunes it.

    Args:
        trial: the trial being run.
        metric: evaluation metric reported and optimised, e.g. ``eval/mean_reward``.
        objective: ``final`` reports each evaluation as is; ``mean_eval`` reports the running mean of the
            evaluations so far (the area under the learning curve: rewards sample efficiency).
        step_offset: added to the runner's env steps (the ``i * total_steps`` of the i-th seed).
        group: the :class:`SeedGroup` of seeds trained together that reports for this seed (``None``: report).
    """

    def __init__(
        self,
        trial: optuna.Trial,
        metric: str = "eval/mean_reward",
        objective: str = "final",
        step_offset: int = 0,
        group: SeedGroup | None = None,
    ) -> None:
        if objective not in OBJECTIVES:
            raise ValueError(f"sweep.objective must be one of {OBJECTIVES}, got {objective!r}")
        self.trial = trial
        self.metric = metric
        self.objective = objective
        self.step_offset = step_offset
        self.group = group
        self.evaluations: list[float] = []
        self.diverged: str | None = None

    # ---------------------------------------------------------------------------------------------- sink
    def write(self, metrics: Mapping[str, float], step: int) -> None:
        """Logger sink: remember the first non-finite ``train/*`` metric."""
        if self.diverged is not None:
            return
        for key, value in metrics.items():
            if key.startswith("train/") and key not in UNDEFINED_OK and not math.isfinite(float(value)):
                self.diverged = f"diverged: {key}={value} at env step {step}"
                return

    def close(self) -> None:
        """Logger sink protocol; nothing to release."""

    # ---------------------------------------------------------------------------------------------- callbacks
    def on_step_end(self, runner: Any) -> None:
        if self.diverged is not None:
            self._prune(self.diverged)

    def on_eval(self, runner: Any, metrics: Mapping[str, float]) -> None:
        if self.metric not in metrics:
            raise KeyError(f"sweep.metric={self.metric!r} is not an evaluation metric; have {sorted(metrics)}")
        value = float(metrics[self.metric])
        step = self.step_offset + self.milestone(runner)
        if not math.isfinite(value):
            self._prune(f"diverged: {self.metric}={value} at env step {step}")
        self.evaluations.append(value)
        if self.group is not None:
            self.group.evaluated(runner, step)
        else:
            report(self.trial, self.value(), step, self.metric, _clock(runner) < runner.total_steps)

    @staticmethod
    def milestone(runner: Any) -> int:
        """The scheduled step of this evaluation: ``eval_freq`` multiples, ``total_steps`` for the final one.

        The runner evaluates at the first step past each multiple, which depends on ``train_freq`` and the
        env count; pruners compare trials at equal steps, so trials that differ there must report alike.
        """
        steps, freq = _clock(runner), int(runner.eval_freq)
        if steps >= runner.total_steps or freq <= 0:
            return int(runner.total_steps)
        return steps // freq * freq

    def value(self) -> float:
        """The objective so far: the last evaluation (``final``) or the mean of all (``mean_eval``)."""
        if not self.evaluations:
            return float("nan")
        return self.evaluations[-1] if self.objective == "final" else float(np.mean(self.evaluations))

    def _prune(self, reason: str) -> None:
        _prune(self.trial, reason)


class SeedGroup:
    """The seeds of one trial trained together: one :class:`TrialReporter` per seed (its runner's callback and
    sink), reporting to the trial, at each evaluation step, the aggregate of their values once all have evaluated.

    Args:
        trial: the trial being run.
        metric: as :class:`TrialReporter`.
        objective: as :class:`TrialReporter`.
        num_seeds: seeds trained together.
        how: ``mean`` or ``iqm`` over seeds.
    """

    def __init__(self, trial: optuna.Trial, metric: str, objective: str, num_seeds: int, how: str) -> None:
        aggregate([], how)  # refuse an unknown aggregate before anything trains
        self.trial, self.metric, self.how = trial, metric, how
        self.seeds = [TrialReporter(trial, metric, objective, group=self) for _ in range(num_seeds)]

    def evaluated(self, runner: Any, step: int) -> None:
        """A seed evaluated at ``step``: report (and maybe prune) once every seed has."""
        if len({len(r.evaluations) for r in self.seeds}) == 1:
            report(self.trial, self.value(), step, self.metric, _clock(runner) < runner.total_steps)

    def value(self) -> float:
        """The trial's value so far: the aggregate of the seeds' objective values."""
        return aggregate([r.value() for r in self.seeds], self.how)


def report(trial: optuna.Trial, value: float, step: int, metric: str, may_prune: bool) -> None:
    """``trial.report`` and prune when the pruner says so; the final evaluation (``may_prune=False``) is the
    result, never a reason to throw the finished run away."""
    trial.report(value, step)
    if may_prune and trial.should_prune():
        _prune(trial, f"pruned at env step {step}: {metric} reported {value:.4g}")


def _prune(trial: optuna.Trial, reason: str) -> None:
    trial.set_user_attr("pruned_reason", reason)
    raise optuna.TrialPruned(reason)


def _clock(runner: Any) -> int:
    """What the runner's intervals count: env steps, or updates for an offline runner (``Runner.steps``)."""
    steps = getattr(runner, "steps", None)
    return int(runner.env_steps if steps is None else steps)

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

OBJECTIVES = ("final", "mean_eval")


class TrialReporter:
    """Reports a run's evaluations to an Optuna trial and prunes it.

    Args:
        trial: the trial being run.
        metric: evaluation metric reported and optimised, e.g. ``eval/mean_reward``.
        objective: ``final`` reports each evaluation as is; ``mean_eval`` reports the running mean of the
            evaluations so far (the area under the learning curve: rewards sample efficiency).
        step_offset: added to the runner's env steps (the ``i * total_steps`` of the i-th seed).
    """

    def __init__(
        self, trial: optuna.Trial, metric: str = "eval/mean_reward", objective: str = "final", step_offset: int = 0
    ) -> None:
        if objective not in OBJECTIVES:
            raise ValueError(f"sweep.objective must be one of {OBJECTIVES}, got {objective!r}")
        self.trial = trial
        self.metric = metric
        self.objective = objective
        self.step_offset = step_offset
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
        reported = self.value()
        self.trial.report(reported, step)
        # The final evaluation is the result, never a reason to throw the finished run away.
        if _clock(runner) < runner.total_steps and self.trial.should_prune():
            self._prune(f"pruned at env step {step}: {self.metric} reported {reported:.4g}")

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
        self.trial.set_user_attr("pruned_reason", reason)
        raise optuna.TrialPruned(reason)


def _clock(runner: Any) -> int:
    """What the runner's intervals count: env steps, or updates for an offline runner (``Runner.steps``)."""
    steps = getattr(runner, "steps", None)
    return int(runner.env_steps if steps is None else steps)

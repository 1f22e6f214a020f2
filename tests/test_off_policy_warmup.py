"""The off-policy schedule's step-counted phases (the gatherer's fast path) run end to end, random before
``learning_starts`` and learning after it (a merge once left an undefined name there that only a run hits)."""

from __future__ import annotations

import warnings

from cardio.build import build_runner
from tests.conftest import compose_train


def test_dqn_run_warms_up_then_learns(tmp_path) -> None:
    overrides = [
        "agent=dqn", "env=CartPole", "seed=0", "runner.total_steps=96", "runner.schedule.learning_starts=48",
        "runner.schedule.batch_size=16", "runner.schedule.train_freq=16", "runner.eval_freq=0",
        "runner.checkpoint_dir=null", f"run_dir={tmp_path}", "logger=csv",
    ]  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runner = build_runner(compose_train(overrides))
    try:
        runner.run()
    finally:  # the CSV sink's files: left open, their ResourceWarning surfaced in whichever test ran next
        runner.logger.close()  # type: ignore[union-attr]
        runner.close()
    assert runner.env_steps == 96
    assert runner.updates > 0  # phases after learning_starts learnt

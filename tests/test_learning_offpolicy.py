"""Slow learning tests (make test-slow) for the continuous-control and recurrent agents: one seed each, short.

The 5-seed acceptance figures (SAC/TD3 >= -200 and DDPG >= -250 on Pendulum-v1 at 2e4 steps in 4 of 5 seeds,
DRQN vs DQN on CartPoleNoVel) come from ``bench/learning.py`` and live in ``docs/learning.md``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from cardio.build import build_runner
from tests.conftest import compose_train

RANDOM_PENDULUM = -1200.0  # a random policy scores about -1200 on Pendulum-v1


def final_return(overrides: list[str], run_dir: Path) -> float:
    cfg = compose_train([*overrides, "seed=0", "runner.eval_freq=0", "logger=csv", f"run_dir={run_dir}"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_runner(cfg).run()["eval/mean_reward"]


@pytest.mark.slow
def test_sac_pendulum_swings_up_within_1e4_steps(tmp_path: Path) -> None:
    # zoo numbers (configs/zoo/sac/Pendulum-v1.yaml), half the budget: seed 0 was at -164 after 1e4 steps in the bench
    assert final_return(["agent=sac", "env=Pendulum", "runner.total_steps=10000"], tmp_path) > -400


@pytest.mark.slow
def test_td3_pendulum_swings_up_within_1e4_steps(tmp_path: Path) -> None:
    # zoo numbers with a shorter random warm-up (2e3 instead of 1e4 env steps), so 8e3 steps of learning
    overrides = ["agent=td3", "env=Pendulum", "runner.total_steps=10000", "runner.schedule.learning_starts=2000"]
    assert final_return(overrides, tmp_path) > -400 > RANDOM_PENDULUM


@pytest.mark.slow
def test_ddpg_pendulum_swings_up_within_1e4_steps(tmp_path: Path) -> None:
    # the TD3 test's shortened warm-up, with DDPG's single critic, no policy delay and no target smoothing
    overrides = ["agent=ddpg", "env=Pendulum", "runner.total_steps=10000", "runner.schedule.learning_starts=2000"]
    assert final_return(overrides, tmp_path) > -400 > RANDOM_PENDULUM


@pytest.mark.slow
def test_drqn_beats_dqn_on_cartpole_without_velocities(tmp_path: Path) -> None:
    # zoo budgets (5e4 env steps each), seed 0: the bench's 5-seed means are 152 (DRQN) and 39 (DQN)
    drqn = final_return(["agent=drqn", "env=CartPoleNoVel"], tmp_path / "drqn")
    dqn = final_return(["agent=dqn", "env=CartPoleNoVel"], tmp_path / "dqn")
    assert drqn > dqn + 30, (drqn, dqn)

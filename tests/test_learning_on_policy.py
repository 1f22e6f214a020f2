"""Slow learning tests for the on-policy agents (make test-slow): issue 5's "must show" figures on CartPole.

The multi-seed table next to SB3, with curves, is ``bench/learning.py`` (written to docs/learning.md).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from cardio.build import build_runner
from tests.conftest import compose_train


def final_eval(agent: str, seed: int, run_dir: Path) -> float:
    """Train ``agent`` on CartPole-v1 with its rl-zoo numbers; the final 10-episode deterministic eval mean."""
    cfg = compose_train([f"agent={agent}", "env=CartPole", f"seed={seed}", "runner.eval_freq=0", "logger=csv"])
    cfg.run_dir = str(run_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_runner(cfg).run()["eval/mean_reward"]


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(5))
def test_ppo_cartpole_zoo_reaches_500(seed: int, tmp_path: Path) -> None:
    """rl-zoo PPO, 1e5 env steps on 8 envs: eval mean 500 in every one of 5 seeds."""
    assert final_eval("ppo", seed, tmp_path) == 500.0


@pytest.mark.slow
def test_a2c_cartpole_zoo_solves_4_of_5_seeds(tmp_path: Path) -> None:
    """rl-zoo A2C, 5e5 env steps on 8 envs: eval mean >= 475 in at least 4 of 5 seeds."""
    scores = [final_eval("a2c", seed, tmp_path / str(seed)) for seed in range(5)]
    assert sum(s >= 475 for s in scores) >= 4, scores

"""Slow learning tests (make test-slow): the shipped defaults learn what the issues promise."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from cardio.build import build_runner
from tests.conftest import compose_train


@pytest.mark.slow
def test_dqn_cartpole_zoo_solves_4_of_5_seeds(tmp_path: Path) -> None:
    scores = []
    for seed in range(5):
        cfg = compose_train([f"seed={seed}", "runner.eval_freq=0", "logger=csv"])
        cfg.run_dir = str(tmp_path / str(seed))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scores.append(build_runner(cfg).run()["eval/mean_reward"])
    assert sum(s >= 475 for s in scores) >= 4, scores

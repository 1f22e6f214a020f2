"""MuJoCo (-v5) with rl-zoo's imported numbers: the zoo file of the env id built applies itself, and SAC, TD3 and
PPO each run a few hundred steps end to end (PPO with rl-zoo's normalisation)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from omegaconf import open_dict

from cardio.build import build_runner
from tests.conftest import compose_train, shrink

pytest.importorskip("mujoco")


@pytest.mark.parametrize("agent", ["sac", "td3", "ppo"])
def test_hopper_runs_with_rl_zoo_numbers(agent: str, tmp_path: Path) -> None:
    cfg = compose_train([f"agent={agent}", "env=Hopper"])
    assert cfg.env.id == "Hopper-v5" and cfg.zoo == f"{agent}/Hopper-v5"  # the overlay of the id built
    if agent == "ppo":  # rl-zoo's PPO Hopper: normalised, ReLU [256, 256] actor and critic, log_std -2
        assert cfg.runner.normalize.gamma == pytest.approx(0.999) and cfg.agent.vf_hidden_sizes == [256, 256]
    else:
        assert cfg.runner.schedule.learning_starts == 10_000  # rl-zoo's MuJoCo warm-up
    cfg = shrink(cfg, tmp_path, total_steps=256)
    with open_dict(cfg):
        if agent == "ppo":
            cfg.runner.schedule.n_steps = 64
            cfg.agent.batch_size = 32
        else:
            cfg.runner.schedule.learning_starts = 64
            cfg.runner.schedule.batch_size = 32
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runner = build_runner(cfg)
        final = runner.run()
    assert runner.env_steps == 256 and runner.updates > 0
    assert runner.gatherer.env.single_observation_space.shape == (11,)
    assert np.isfinite(final["eval/mean_reward"])
    assert (runner.normalizer is not None) == (agent == "ppo")

"""Exact resume holds for the on-policy path too (PPO), not only for DQN (tests/test_checkpoint.py)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig, open_dict

from cardio.build import build_runner
from cardio.loggers import Logger
from tests.conftest import compose_train, shrink


class Capture:
    def __init__(self) -> None:
        self.rows: list[tuple[int, dict[str, float]]] = []

    def write(self, metrics, step):
        self.rows.append((step, {k: v for k, v in metrics.items() if not k.startswith("time/")}))

    def close(self, *args):
        pass


class Crash(RuntimeError):
    pass


class CrashAt:
    """Stops the run like a crash once ``steps`` env steps are done (after the runner's own logging)."""

    def __init__(self, steps: int) -> None:
        self.steps = steps

    def on_step_end(self, runner) -> None:
        if runner.env_steps >= self.steps:
            raise Crash


def ppo_cfg(run_dir: Path) -> DictConfig:
    cfg = shrink(compose_train(["agent=ppo", "env=CartPole", "env.num_envs=2"]), run_dir, total_steps=256)
    with open_dict(cfg):
        cfg.runner.schedule.n_steps = 32
        cfg.runner.log_interval = 64
        cfg.agent.batch_size = 32
        cfg.agent.n_epochs = 2
    return cfg


def test_ppo_interrupted_and_resumed_matches_straight_run(tmp_path: Path) -> None:
    warnings.simplefilter("ignore")
    straight_log = Capture()
    build_runner(ppo_cfg(tmp_path / "a"), logger=Logger({"c": straight_log})).run()

    first_log, second_log = Capture(), Capture()
    first = build_runner(ppo_cfg(tmp_path / "b"), logger=Logger({"c": first_log}), callbacks=[CrashAt(128)])
    with pytest.raises(Crash):
        first.run()  # total_steps stays 256: PPO's linear schedules depend on it
    path = first.save(tmp_path / "b" / "last.ckpt")
    second = build_runner(ppo_cfg(tmp_path / "b"), logger=Logger({"c": second_log}))
    second.load(path)
    second.run()
    resumed = first_log.rows + second_log.rows
    straight = straight_log.rows
    assert any("train/loss" in m for _, m in straight)
    assert resumed == straight
    # negative control: the same resume with torch's RNG disturbed after loading (PPO samples actions from it)
    drift_log = Capture()
    drift = build_runner(ppo_cfg(tmp_path / "b"), logger=Logger({"c": drift_log}))
    drift.load(path)
    torch.manual_seed(12345)
    drift.run()
    assert first_log.rows + drift_log.rows != straight

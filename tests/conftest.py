"""Shared fixtures: a composed-and-shrunk training config (compose API), tiny counting envs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, open_dict

from cardio import config

CONFIG_DIR = str(Path(__file__).resolve().parents[1] / "configs")

os.environ.setdefault("WANDB_MODE", "disabled")  # no sink may reach a host from the test suite
# One intra-op thread for torch, numpy's BLAS and XLA, here and in every subprocess a test starts: small nets run
# fastest on one, and several threads per process on a shared 2-core machine made one SAC update 10x slower.
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")


def compose_train(overrides: list[str] | None = None) -> DictConfig:
    """``configs/train.yaml`` composed with ``overrides`` and its zoo overlay, as ``scripts/train.py`` would see it."""
    return config.compose_train(CONFIG_DIR, overrides or [])


def shrink(cfg: DictConfig, run_dir: Path, total_steps: int = 512) -> DictConfig:
    """Make a composed config tiny, CPU-only and writing under ``run_dir``."""
    with open_dict(cfg):
        cfg.run_dir = str(run_dir)
        cfg.device = "cpu"
        cfg.runner.total_steps = total_steps
        cfg.runner.log_interval = max(total_steps // 4, 1)
        cfg.runner.eval_freq = 0
        cfg.runner.eval_episodes = 2
        cfg.logger.sinks = {}
    return cfg


@pytest.fixture
def cfg_train(tmp_path: Path) -> Iterator[DictConfig]:
    """Default training config (DQN on CartPole, zoo numbers) shrunk to a few hundred steps in ``tmp_path``."""
    cfg = compose_train(
        ["runner.schedule.learning_starts=64", "runner.schedule.train_freq=16", "runner.schedule.gradient_steps=4"]
    )
    yield shrink(cfg, tmp_path)
    GlobalHydra.instance().clear()

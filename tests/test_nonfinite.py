"""Non-finite guard: a NaN observation, a NaN reward and a diverging learning rate each stop the run with one line
naming the value and the env step, the last good checkpoint untouched; ``runner.check_finite=false`` turns it off."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import optuna
import pytest
import torch
from omegaconf import open_dict

from cardio import checkpoint, weights
from cardio.build import build_runner
from cardio.finite import NonFiniteError, bad_field, bad_metric, bad_parameter
from cardio.sweep.driver import Objective, Sweep
from cardio.sweep.settings import SweepConfig
from tests.conftest import compose_train, shrink
from tests.helpers import pythonpath

ROOT = Path(__file__).resolve().parents[1]
NAN_STEP = 300  # env step (per env copy) at which the wrappers below go wrong


class NaNObservation(gym.Wrapper):
    """From its ``NAN_STEP``-th step on, the env's observations are NaN (a broken simulator)."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.steps = 0

    def step(self, action):  # type: ignore[no-untyped-def]
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.steps += 1
        if self.steps >= NAN_STEP:
            obs = np.full_like(obs, np.nan)
        return obs, reward, terminated, truncated, info


class NaNReward(gym.Wrapper):
    """The ``NAN_STEP``-th step's reward is NaN, once."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.steps = 0

    def step(self, action):  # type: ignore[no-untyped-def]
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.steps += 1
        return obs, (math.nan if self.steps == NAN_STEP else reward), terminated, truncated, info


def tiny_cfg(run_dir: Path, *overrides: str, total_steps: int = 2000):
    cfg = compose_train(["~zoo", "agent.hidden_sizes=[16]", *overrides])
    cfg = shrink(cfg, run_dir, total_steps=total_steps)
    with open_dict(cfg):
        cfg.runner.checkpoint_dir = str(run_dir)
        cfg.runner.checkpoint_freq = 200
        cfg.runner.schedule.learning_starts = 64
        cfg.buffer.capacity = 256  # small: a stored NaN row is sampled within a few updates
    return cfg


def saved_step(run_dir: Path) -> int:
    return checkpoint.load(run_dir, "cardio.runner")["gatherer"]["stats"].env_steps


@pytest.mark.parametrize(
    ("wrapper", "named"), [("NaNObservation", r"batch field (next_)?obs"), ("NaNReward", "batch field reward")]
)
def test_a_nan_from_the_env_stops_the_run_naming_the_field(wrapper: str, named: str, tmp_path: Path) -> None:
    cfg = tiny_cfg(tmp_path, f"env.wrappers=[tests.test_nonfinite.{wrapper}]")
    runner = build_runner(cfg)
    with pytest.raises(NonFiniteError, match=rf"non-finite {named} at env step (\d+)") as caught:
        runner.run()
    step = caught.value.env_step
    assert NAN_STEP <= step < NAN_STEP + 300  # caught soon after the env went wrong
    # the last good checkpoint is the one before the NaN, untouched, and named in the message
    assert saved_step(tmp_path) < step and saved_step(tmp_path) <= NAN_STEP
    assert str(tmp_path / "last.ckpt") in str(caught.value)
    assert weights.weights_meta(tmp_path / weights.WEIGHTS_NAME)["env_steps"] == saved_step(tmp_path)
    assert np.all(np.isfinite(weights.read_weights(tmp_path / weights.WEIGHTS_NAME)["q_net/0.layers.0.weight"]))


def test_check_finite_false_trains_on_through_the_nan(tmp_path: Path) -> None:
    """Negative control: with the guard off the same run goes to the end, NaN weights checkpointed."""
    cfg = tiny_cfg(tmp_path, "env.wrappers=[tests.test_nonfinite.NaNObservation]", "runner.check_finite=false")
    runner = build_runner(cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runner.run()
    assert runner.env_steps == 2000 and bad_parameter(runner.agent) is not None


def test_a_diverging_learning_rate_stops_the_run_naming_the_metric(tmp_path: Path) -> None:
    """SAC at lr=1e6 blows up within a few updates (DQN and PPO only grow huge: Adam's steps and the gradient
    clip keep them finite, so there is no NaN to catch)."""
    cfg = tiny_cfg(tmp_path, "agent=sac", "env=Pendulum", "agent.lr=1e6", total_steps=1000)
    with open_dict(cfg):
        cfg.runner.schedule.learning_starts = cfg.runner.schedule.batch_size = 64
    runner = build_runner(cfg)
    with pytest.raises(NonFiniteError, match=r"non-finite metric train/\w+ = nan \(parameter actor/") as caught:
        runner.run()
    assert caught.value.env_step < 400
    if (tmp_path / "last.ckpt").exists():  # a checkpoint from before the blow-up, never one after it
        assert saved_step(tmp_path) < caught.value.env_step
    else:
        assert "no checkpoint was written" in str(caught.value)


def test_train_script_exits_non_zero_with_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": pythonpath(ROOT), "WANDB_MODE": "disabled"}
    cmd = [sys.executable, "scripts/train.py", f"hydra.run.dir={tmp_path}", "~zoo", "agent.hidden_sizes=[16]",
           "env.wrappers=[tests.test_nonfinite.NaNReward]", "runner.total_steps=2000", "runner.checkpoint_freq=200",
           "runner.schedule.learning_starts=64", "buffer.capacity=256", "runner.eval_freq=0", "logger=csv"]  # fmt: skip
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 1, out.stderr[-2000:]
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: non-finite batch field reward at env step"), lines
    assert "Traceback" not in out.stderr and saved_step(tmp_path) <= NAN_STEP


def test_a_diverged_sweep_trial_is_pruned_with_the_guards_message(tmp_path: Path) -> None:
    settings = SweepConfig(
        study_name="nan", output_dir=str(tmp_path), n_trials=1, plots=False, enqueue_base=False,
        params={"agent.gamma": {"type": "categorical", "choices": [0.9]}},
    )  # fmt: skip
    overrides = [
        "env.wrappers=[tests.test_nonfinite.NaNReward]",
        "buffer.capacity=256",
        "runner.total_steps=1000",
        "runner.eval_freq=500",
        "runner.eval_episodes=2",
        "runner.schedule.learning_starts=100",
        "agent.hidden_sizes=[16,16]",
    ]
    study = optuna.create_study(direction="maximize")
    study.optimize(Objective(Sweep(settings, overrides), study), n_trials=1)
    trial = study.trials[0]
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert trial.user_attrs["pruned_reason"].startswith("diverged: non-finite")


def test_the_checks_name_what_is_not_finite() -> None:
    batch = {"obs": np.zeros((4, 2), np.float32), "action": np.zeros(4, np.int64), "reward": np.ones(4, np.float32)}
    assert bad_field(batch) is None
    batch["obs"][2, 1] = np.inf
    assert bad_field(batch) == "batch field obs"
    assert bad_field({"obs": {"pixels": np.zeros(2, np.uint8), "pos": np.array([np.nan])}}) == "batch field obs/pos"
    assert bad_metric({"train/loss": 0.5, "train/q_mean": math.nan}) == "metric train/q_mean = nan"
    assert bad_metric({"train/loss": 0.5, "td_error": np.ones(3)}) is None
    assert bad_metric({"train/explained_variance": math.nan}) is None  # undefined for constant returns, not diverged

    class Agent:
        def __init__(self) -> None:
            self.net = torch.nn.Linear(2, 2)

        def state_dict(self):
            return {"net": self.net.state_dict(), "epsilon": 0.1, "rng": {"state": 2**100}}

    agent = Agent()
    assert bad_parameter(agent) is None
    with torch.no_grad():
        agent.net.bias[1] = math.nan
    assert bad_parameter(agent) == "parameter net/bias"

"""Checkpoints: exact resume on CartPole, all-or-nothing loads, atomic writes, signals, resume config."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from cardio import checkpoint
from cardio.agents.dqn import DQNConfig
from cardio.buffers.circular import CircularBuffer
from cardio.build import seed_everything
from cardio.checkpoint import CheckpointError, Interrupted
from cardio.envs import make_env
from cardio.loggers import Logger
from cardio.runner import OffPolicySchedule, Runner
from tests.helpers import pythonpath

ROOT = Path(__file__).resolve().parents[1]
STOP_AT = 600  # env steps: 75 runner steps of 4 vector steps x 2 envs


class Recorder:
    def __init__(self) -> None:
        self.rows: list[tuple[int, dict[str, float]]] = []

    def write(self, metrics, step):  # time/* is wall clock: the only thing allowed to differ
        self.rows.append((step, {k: v for k, v in metrics.items() if not k.startswith("time/")}))

    def close(self):
        pass


class StopAt:
    """Raises once the runner passes ``steps`` (after that step's checkpoint): a crash mid-run."""

    def __init__(self, steps: int) -> None:
        self.steps = steps

    def on_step_end(self, runner: Runner) -> None:
        if runner.env_steps >= self.steps:
            raise RuntimeError("crash")


def make_runner(
    tmp: Path, env_id: str = "CartPole-v1", hidden: tuple[int, ...] = (32,), callbacks: tuple[Any, ...] = ()
) -> tuple[Runner, Recorder]:
    seed_everything(0)
    torch.set_num_threads(1)
    env = make_env(env_id, num_envs=2, seed=0)
    eval_env = make_env(env_id, num_envs=1, seed=1)
    agent = DQNConfig(lr=1e-3, hidden_sizes=hidden, target_update_interval=100, exploration_fraction=0.5).build(
        env.single_observation_space, env.single_action_space, seed=0, env_id=env_id
    )
    recorder = Recorder()
    runner = Runner(
        env,
        agent,
        CircularBuffer(2000, num_envs=2, seed=0),
        OffPolicySchedule(learning_starts=64, train_freq=4, gradient_steps=2, batch_size=32),
        total_steps=800,
        eval_env=eval_env,
        logger=Logger({"rec": recorder}),
        seed=0,
        log_interval=100,
        eval_freq=400,
        eval_episodes=3,
        callbacks=callbacks,
        checkpoint_dir=tmp,
        checkpoint_freq=300,
    )
    return runner, recorder


def resumed_rows(tmp_path: Path, keep_env_state: bool = True) -> list[tuple[int, dict[str, float]]]:
    """Run to STOP_AT and crash, then resume a freshly built runner (global RNGs scrambled) to the end."""
    crashed, first = make_runner(tmp_path, callbacks=(StopAt(STOP_AT),))
    with pytest.raises(RuntimeError, match="crash"):
        crashed.run()
    resumed, second = make_runner(tmp_path)
    np.random.seed(123), torch.manual_seed(123)  # the checkpoint must bring back the global RNGs too
    state = checkpoint.load(tmp_path, kind="cardio.runner")
    if not keep_env_state:
        state["gatherer"]["env"] = state["eval_gatherer"]["env"] = None
    with pytest.warns(UserWarning, match="was not saved") if not keep_env_state else _nothing():
        resumed.load_state_dict(state)
    assert resumed.env_steps == STOP_AT
    resumed.run()
    return [row for row in first.rows if row[0] <= STOP_AT] + second.rows


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def test_interrupted_and_resumed_run_matches_the_uninterrupted_one(tmp_path: Path) -> None:
    straight, recorder = make_runner(tmp_path / "straight")
    straight.run()
    expected = recorder.rows
    assert any("eval/mean_reward" in m for _, m in expected) and any("train/loss" in m for _, m in expected)
    assert resumed_rows(tmp_path / "resumed") == expected
    # negative control: without the envs' saved state the resumed run drifts
    assert resumed_rows(tmp_path / "no_env_state", keep_env_state=False) != expected


def test_a_resume_that_resets_the_envs_cuts_the_stored_episodes_and_starts_fresh_ones(tmp_path: Path) -> None:
    """Without the envs' saved state (ALE, Box2D, MuJoCo) the training envs restart: each stream's unfinished
    episode ends at its newest stored row (truncated), and the restart is seeded from the run's seed and step:
    the same for two resumes of one checkpoint, and not a replay of the run's first episodes."""
    import copy

    crashed, _ = make_runner(tmp_path, callbacks=(StopAt(STOP_AT),))
    with pytest.raises(RuntimeError, match="crash"):
        crashed.run()
    state = checkpoint.load(tmp_path, kind="cardio.runner")
    state["gatherer"]["env"] = state["eval_gatherer"]["env"] = None
    saved = state["buffer"]["storage"]
    newest = (state["buffer"]["cursor"] - 1) % saved["truncated"].shape[0]
    open_streams = [e for e in range(2) if not (saved["truncated"] | saved["terminated"])[newest[e], e]]
    assert open_streams, "both episodes happened to end at the checkpoint: the test would prove nothing"
    restarts = []
    for _ in range(2):
        resumed, _ = make_runner(tmp_path)
        with pytest.warns(UserWarning, match="end there, truncated in the buffer"):
            resumed.load_state_dict(copy.deepcopy(state))
        stored = resumed.buffer.storage
        assert all(stored["truncated"][newest[e], e] and not stored["terminated"][newest[e], e] for e in open_streams)
        restarts.append(resumed.gatherer.obs.copy())
    np.testing.assert_array_equal(restarts[0], restarts[1])
    first_episodes = make_env("CartPole-v1", num_envs=2, seed=0).reset(seed=0)[0]
    assert not np.array_equal(restarts[0], first_episodes)


def test_mismatched_checkpoint_is_refused_and_leaves_the_runner_untouched(tmp_path: Path) -> None:
    runner, _ = make_runner(tmp_path / "a")
    runner.run(200)
    path = runner.save(tmp_path / "a" / "last.ckpt")
    cases = {  # name: (runner built differently, words the error must contain)
        "other hidden sizes": (make_runner(tmp_path / "b", hidden=(16,))[0], "agent.q_net"),
        "other env": (make_runner(tmp_path / "c", env_id="Acrobot-v1")[0], "env_id"),
    }
    for name, (other, words) in cases.items():
        before = other.state_dict()
        with pytest.raises(CheckpointError, match=words):
            other.load(path)
        after = other.state_dict()
        for key in ("updates", "counters"):
            assert after[key] == before[key] or key == "counters", name
        for k, v in before["agent"]["q_net"].items():
            torch.testing.assert_close(after["agent"]["q_net"][k], v, msg=name)
        assert other.env_steps == 0, name


def test_failure_while_applying_rolls_back(tmp_path: Path) -> None:
    runner, _ = make_runner(tmp_path)
    runner.run(200)
    state = runner.state_dict()
    fresh, _ = make_runner(tmp_path / "fresh")
    weights = {k: v.clone() for k, v in fresh.agent.state_dict()["q_net"].items()}
    state["buffer"]["num_envs"] = 3  # passes the agent checks, fails inside buffer.load_state_dict
    with pytest.raises(CheckpointError, match="left unchanged"):
        fresh.load_state_dict(state)
    for k, v in fresh.agent.state_dict()["q_net"].items():  # the agent, loaded first, was rolled back
        torch.testing.assert_close(v, weights[k])
    assert fresh.updates == 0 and fresh.env_steps == 0


def test_corrupt_foreign_and_old_checkpoints_give_clear_errors(tmp_path: Path) -> None:
    cases = {
        "truncated": (lambda p: p.write_bytes(p.read_bytes()[:100]), "corrupt"),
        "foreign": (lambda p: checkpoint.atomic_save({"weights": 1}, p), "not a 'cardio.runner' checkpoint"),
        "old version": (lambda p: checkpoint.atomic_save({"kind": "cardio.runner", "version": 0}, p), "version 0"),
        # version 1 was torch.save's zip format: refused with the version named, not as corrupt
        "torch.save": (lambda p: torch.save({"kind": "cardio.runner", "version": 1}, p), "torch.save file"),
    }
    runner, _ = make_runner(tmp_path)
    for name, (spoil, words) in cases.items():
        path = runner.save(tmp_path / name / "last.ckpt")
        spoil(path)
        with pytest.raises(CheckpointError, match=words):
            runner.load(path.parent)  # a run dir resolves to its last.ckpt
    with pytest.raises(CheckpointError, match=r"no last\.ckpt"):
        checkpoint.resolve(tmp_path)


def test_atomic_save_keeps_the_old_file_when_writing_fails(tmp_path: Path) -> None:
    path = checkpoint.atomic_save({"kind": "x", "n": 1}, tmp_path / "last.ckpt")

    class Unpicklable:
        def __reduce__(self):
            raise TypeError("cannot pickle")

    with pytest.raises(TypeError):
        checkpoint.atomic_save({"kind": "x", "bad": Unpicklable()}, path)
    assert checkpoint.load(path, "x")["n"] == 1 and not list(tmp_path.glob("*.tmp"))


def test_sigterm_checkpoints_at_a_step_boundary_and_exits_143(tmp_path: Path) -> None:
    class SendSignal:
        def on_step_end(self, runner: Runner) -> None:
            if runner.env_steps == 104:
                os.kill(os.getpid(), signal.SIGTERM)

    runner, _ = make_runner(tmp_path, callbacks=(SendSignal(),))
    previous = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Interrupted) as stop:
        runner.run()
    assert stop.value.exit_code == 143 and stop.value.checkpoint == tmp_path / "last.ckpt"
    assert checkpoint.load(tmp_path, "cardio.runner")["gatherer"]["stats"].env_steps == 104
    assert signal.getsignal(signal.SIGTERM) is previous  # handlers restored


def test_resume_config_allows_longer_runs_and_refuses_other_changes(tmp_path: Path) -> None:
    saved = {"seed": 0, "run_dir": "old", "resume": None, "agent": {"lr": 0.1}, "runner": {"total_steps": 100}}
    (tmp_path / "config.yaml").write_text(OmegaConf.to_yaml(saved))
    checkpoint.atomic_save({"kind": "cardio.runner"}, tmp_path / "last.ckpt")
    given = OmegaConf.create({**saved, "resume": str(tmp_path), "runner": {"total_steps": 500}})
    cfg, ckpt = checkpoint.resume_config(given, [f"resume={tmp_path}", "runner.total_steps=500"])
    assert ckpt == tmp_path / "last.ckpt" and cfg.runner.total_steps == 500 and cfg.run_dir == str(tmp_path)
    given.agent.lr = 0.5
    with pytest.raises(CheckpointError, match=r"agent\.lr: saved 0\.1, given 0\.5"):
        checkpoint.resume_config(given, [f"resume={tmp_path}", "agent.lr=0.5"])


def test_resume_config_of_a_copied_run_dir_points_its_paths_into_the_copy(tmp_path: Path) -> None:
    """config.yaml holds its paths resolved: a copy resumed as it was saved would write its checkpoints into the
    original run dir. Paths inside the old run dir move with it; a sibling that only shares the prefix does not."""
    old = "/somewhere/runs/a"
    saved = {
        "seed": 0, "run_dir": old, "resume": None, "runner": {"total_steps": 100, "checkpoint_dir": old},
        "logger": {"tensorboard": {"log_dir": f"{old}/tb"}}, "data": [f"{old}2/x", "relative/path"],
    }  # fmt: skip
    (tmp_path / "config.yaml").write_text(OmegaConf.to_yaml(saved))
    checkpoint.atomic_save({"kind": "cardio.runner"}, tmp_path / "last.ckpt")
    given = OmegaConf.create({**saved, "resume": str(tmp_path)})
    cfg, _ = checkpoint.resume_config(given, [f"resume={tmp_path}"])
    assert cfg.run_dir == str(tmp_path) and cfg.runner.checkpoint_dir == str(tmp_path)
    assert cfg.logger.tensorboard.log_dir == f"{tmp_path}/tb"
    assert list(cfg.data) == [f"{old}2/x", "relative/path"]


def test_ctrl_c_on_train_script_checkpoints_exits_130_and_resumes(tmp_path: Path) -> None:
    """The real thing: SIGINT to `scripts/train.py`, then `resume=<run dir>`, then `scripts/evaluate.py`."""
    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": pythonpath(ROOT), "WANDB_MODE": "disabled"}
    common = ["agent.hidden_sizes=[16]", "runner.schedule.learning_starts=64", "runner.schedule.train_freq=32"]
    common += ["runner.schedule.gradient_steps=4", "runner.log_interval=256", "runner.eval_episodes=2", "logger=csv"]
    cmd = [sys.executable, "scripts/train.py", f"hydra.run.dir={run_dir}", *common]
    proc = subprocess.Popen([*cmd, "runner.total_steps=1000000"], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 120
    while not (run_dir / "progress.csv").is_file() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    stopped_at = checkpoint.load(run_dir, "cardio.runner")["gatherer"]["stats"].env_steps
    assert 256 <= stopped_at < 1_000_000 and "training stopped by SIGINT" in err

    target = stopped_at + 512
    out = subprocess.run([*cmd, f"resume={run_dir}", f"runner.total_steps={target}"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    steps = pd.read_csv(run_dir / "progress.csv")["step"].tolist()
    assert steps == sorted(steps) and steps[-1] >= target  # appended after the checkpoint, no rewind
    assert checkpoint.load(run_dir, "cardio.runner")["gatherer"]["stats"].env_steps >= target

    from scripts.evaluate import main as evaluate

    metrics = evaluate([f"run={run_dir}", "episodes=2", "video=true"])
    assert set(metrics) >= {"eval/mean_reward", "eval/iqm_reward"}
    assert (run_dir / "eval.json").is_file() and (run_dir / "videos" / "eval-episode-0.gif").stat().st_size > 1000


@pytest.mark.parametrize(("env_id", "restorable"), [("CartPole-v1", True), ("LunarLander-v3", False)])
def test_env_state_is_saved_only_where_it_restores(env_id: str, restorable: bool) -> None:
    env = make_env(env_id, num_envs=2, seed=0)
    env.reset(seed=0)
    state = checkpoint.env_state(env)  # LunarLander is EzPickle: pickling it would rebuild a fresh env
    assert (state is not None) == restorable
    if state is not None:
        for _ in range(3):
            env.step(np.array([0, 1]))
        other = make_env(env_id, num_envs=2, seed=7)
        other.reset(seed=7)
        env.reset(seed=0)
        checkpoint.load_env_state(other, state)
        np.testing.assert_array_equal(other.step(np.array([1, 1]))[0], env.step(np.array([1, 1]))[0])

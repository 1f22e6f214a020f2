"""cardio run dirs read by SB3's own tools: ``monitor.csv`` through ``load_results``/``ts2xy``, ``evaluations.npz``
as ``EvalCallback`` writes it, and SB3's metric names in ``progress.csv``. Every run dir here is written by the
real training command."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("stable_baselines3")
from stable_baselines3.common.monitor import load_results
from stable_baselines3.common.results_plotter import ts2xy

ROOT = Path(__file__).resolve().parents[1]


def train(run_dir: Path, *overrides: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, str(ROOT / "scripts" / "train.py"), f"hydra.run.dir={run_dir}", "logger=csv", *overrides]
    done = subprocess.run(cmd, cwd=run_dir.parent, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def progress(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "progress.csv").open() as f:
        return list(csv.DictReader(f))


def last(run_dir: Path, key: str) -> float:
    """The last logged value of ``key`` (evaluation rows leave the training columns empty)."""
    return float([row[key] for row in progress(run_dir) if row.get(key)][-1])


DQN = ["runner.total_steps=1000", "runner.eval_freq=500", "runner.eval_episodes=3", "runner.log_interval=500"]
DQN += ["runner.schedule.learning_starts=200"]


@pytest.fixture(scope="module")
def dqn_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("sb3") / "dqn"
    train(run_dir, *DQN)
    return run_dir


def test_sb3_load_results_reads_the_episode_file(dqn_run: Path) -> None:
    df = load_results(str(dqn_run))
    assert len(df) == last(dqn_run, "time/episodes") > 10  # one row per finished training episode
    assert (df["r"] == df["l"]).all()  # CartPole pays 1 per step: the env's own return, not a rescaled one
    x, y = ts2xy(df, "timesteps")
    assert x[-1] == df["l"].sum() <= 1000 and np.all(np.diff(x) > 0)
    assert np.all(np.diff(df["t"].to_numpy()) >= 0)
    # rollout/ep_rew_mean is the mean of the last 100 of these same episodes
    assert last(dqn_run, "rollout/ep_rew_mean") == pytest.approx(y[-100:].mean(), rel=1e-5)


def test_evaluations_npz_is_what_eval_callback_writes(dqn_run: Path) -> None:
    with np.load(dqn_run / "evaluations.npz") as f:
        assert sorted(f.files) == ["ep_lengths", "results", "timesteps"]
        timesteps, results, lengths = f["timesteps"], f["results"], f["ep_lengths"]
    logged = {int(r["step"]): float(r["eval/mean_reward"]) for r in progress(dqn_run) if r.get("eval/mean_reward")}
    assert timesteps.tolist() == sorted(logged) and len(logged) == 2 and timesteps[-1] == 1000
    assert results.shape == lengths.shape == (2, 3)
    for step, row in zip(timesteps, results, strict=True):
        assert logged[int(step)] == pytest.approx(row.mean())


def test_progress_uses_sb3_metric_names(dqn_run: Path) -> None:
    columns = set(progress(dqn_run)[0])
    sb3_dqn = {"rollout/ep_rew_mean", "rollout/ep_len_mean", "rollout/exploration_rate", "time/episodes"}
    sb3_dqn |= {"time/fps", "time/time_elapsed", "time/total_timesteps", "train/loss", "train/n_updates"}
    sb3_dqn |= {"train/learning_rate"}
    assert sb3_dqn <= columns, sb3_dqn - columns
    assert "rollout/episodes" not in columns  # SB3 calls it time/episodes


def test_on_policy_runs_log_iterations(tmp_path: Path) -> None:
    run_dir = tmp_path / "ppo"
    overrides = ["agent=ppo", "env.num_envs=1", "agent.batch_size=64", "runner.schedule.n_steps=64"]
    overrides += ["runner.total_steps=256", "runner.log_interval=64"]
    train(run_dir, *overrides, "runner.eval_freq=0", "runner.eval_episodes=2")
    rows = [r for r in progress(run_dir) if r.get("time/iterations")]
    assert [float(r["time/iterations"]) for r in rows] == [1, 2, 3, 4]  # one rollout of 64 steps each
    assert {"train/learning_rate", "train/clip_range", "train/approx_kl", "train/entropy_loss"} <= set(rows[0])


def test_resume_drops_episodes_and_evaluations_after_the_checkpoint(tmp_path: Path) -> None:
    """A crash after the last checkpoint leaves rows the resumed run will record again: they are dropped."""
    run_dir = tmp_path / "run"
    train(run_dir, *DQN[1:], "runner.total_steps=500")
    episodes = len(load_results(str(run_dir)))
    with (run_dir / "monitor.csv").open("a") as f:  # what a run killed after its checkpoint leaves behind
        f.write("999,999,999\n")
    with np.load(run_dir / "evaluations.npz") as f:
        saved = dict(f)
    np.savez(
        run_dir / "evaluations.npz",
        timesteps=np.append(saved["timesteps"], 600),
        results=np.vstack([saved["results"], [[-999, -999, -999]]]),
        ep_lengths=np.vstack([saved["ep_lengths"], [[-999, -999, -999]]]),
    )
    train(run_dir, *DQN[1:], "runner.total_steps=1000", f"resume={run_dir}")
    df = load_results(str(run_dir))
    assert 999 not in df["r"].to_numpy() and len(df) > episodes
    assert len(df) == last(run_dir, "time/episodes")
    with np.load(run_dir / "evaluations.npz") as f:
        assert f["timesteps"].tolist() == [500, 1000] and -999 not in f["results"]


def test_closing_the_runner_closes_monitor_csv_and_a_later_run_appends(tmp_path: Path) -> None:
    """``Runner.close`` (a sweep trial's end, a multirun job's) closes the monitor file with the envs: each trial
    left one open before, so a long sweep in one worker ran towards its open-file limit. A ``run()`` after it
    reopens the file and appends: every episode of both runs is there, the first run's included."""
    from cardio.build import build_runner
    from cardio.sb3_files import SB3Files
    from tests.conftest import compose_train

    overrides = [*DQN[1:], "runner.total_steps=500", f"run_dir={tmp_path}", "logger=csv"]
    runner = build_runner(compose_train(overrides))
    files = next(cb for cb in runner.callbacks if isinstance(cb, SB3Files))
    runner.run()
    first = len(load_results(str(tmp_path)))
    assert first > 0 and files._file is not None
    runner.close()
    assert files._file is None
    runner.run(total_steps=1000)
    runner.close()
    runner.logger.close()  # type: ignore[union-attr]
    df = load_results(str(tmp_path))
    assert len(df) > first and len(df) == runner.gatherer.stats.episodes

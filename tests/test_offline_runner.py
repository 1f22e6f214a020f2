"""The offline runner through the real commands: training without env steps, exact resume, an Optuna sweep,
deterministic recording, and offline-to-online fine-tuning that carries the buffer over.

Every dataset is made here under ``tmp_path`` (``MINARI_DATASETS_PATH``): nothing is downloaded.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("minari")

from cardio import checkpoint
from cardio.build import build_buffer, build_env, build_runner
from cardio.datasets.minari import DatasetError, load_dataset, write_dataset
from cardio.datasets.record import record_episodes
from cardio.envs import make_env
from tests.conftest import compose_train, shrink
from tests.helpers import pythonpath

ROOT = Path(__file__).resolve().parents[1]
DATASET = "test/CartPole-v1/random-v0"
TINY = ["env=CartPole", f"runner.schedule.dataset={DATASET}", "runner.schedule.batch_size=32", "logger=csv"]
TINY += [
    "runner.schedule.gradient_steps=50",
    "runner.log_interval=50",
    "runner.eval_freq=100",
    "runner.eval_episodes=2",
]


@pytest.fixture
def datasets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A 30-episode uniform-policy CartPole dataset; returns the environment the subprocesses need."""
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    env = make_env("CartPole-v1", seed=0)
    episodes = record_episodes(None, env, 30, epsilon=1.0, seed=0)
    write_dataset(
        DATASET,
        episodes,
        env_spec=env.get_attr("spec")[0],
        observation_space=env.single_observation_space,
        action_space=env.single_action_space,
    )
    return {**os.environ, "PYTHONPATH": pythonpath(ROOT), "WANDB_MODE": "disabled"}


def train(env: dict[str, str], run_dir: Path, *overrides: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "scripts/train.py", f"hydra.run.dir={run_dir}", *overrides]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def test_a_dataset_that_does_not_fit_the_env_fails_naming_both(datasets: dict[str, str], tmp_path: Path) -> None:
    cfg = compose_train(["agent=bc", *TINY, "env=Acrobot"])
    with pytest.raises(DatasetError, match=f"dataset '{DATASET}' does not fit this env: observation space is Box"):
        build_buffer(cfg, build_env(cfg))


def test_an_offline_run_trains_on_updates_alone_and_resumes_exactly(datasets: dict[str, str], tmp_path: Path) -> None:
    common = ["agent=cql", "agent.hidden_sizes=[16]", "agent.target_update_interval=40", *TINY]
    train(datasets, tmp_path / "whole", *common, "runner.total_steps=300")
    train(datasets, tmp_path / "split", *common, "runner.total_steps=200")
    train(datasets, tmp_path / "split", *common, f"resume={tmp_path / 'split'}", "runner.total_steps=300")

    rows = pd.read_csv(tmp_path / "whole" / "progress.csv")
    assert rows["time/total_timesteps"].dropna().eq(0).all()  # no env step was taken for training
    logged = rows.dropna(subset=["train/loss"])
    assert logged["step"].tolist() == [50, 100, 150, 200, 250, 300]  # the clock is gradient updates
    assert logged["train/n_updates"].tolist() == [50, 100, 150, 200, 250, 300]
    assert rows.dropna(subset=["eval/mean_reward"])["step"].tolist() == [100, 200, 300]

    def without_time(run: str) -> pd.DataFrame:
        frame = pd.read_csv(tmp_path / run / "progress.csv")
        return frame[[c for c in frame.columns if not c.startswith("time/")]].reset_index(drop=True)

    pd.testing.assert_frame_equal(without_time("whole"), without_time("split"))
    # the resumed half learnt: its losses are its own, not a replay of the first half's
    assert not np.allclose(logged["train/loss"].iloc[:3], logged["train/loss"].iloc[3:])


def test_a_sweep_runs_on_an_offline_config(datasets: dict[str, str], tmp_path: Path) -> None:
    cmd = [sys.executable, "scripts/sweep.py", "agent=cql", *TINY, "agent.hidden_sizes=[16]", "sweep.n_trials=2"]
    cmd += ["sweep.n_workers=1", f"sweep.output_dir={tmp_path / 'sweeps'}", f"sweep.export_dir={tmp_path / 'exp'}"]
    cmd += ["sweep.plots=false", "sweep.overrides=[runner.total_steps=100]"]
    out = subprocess.run(cmd, cwd=ROOT, env=datasets, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    trials = sorted((tmp_path / "sweeps" / "cql_cartpole").glob("trial_*/seed_0/progress.csv"))
    assert len(trials) == 2
    for progress in trials:
        frame = pd.read_csv(progress)
        assert frame["time/total_timesteps"].dropna().eq(0).all()
        assert frame.dropna(subset=["eval/mean_reward"])["step"].max() == 100


def test_recording_is_deterministic_for_a_seed(datasets: dict[str, str], tmp_path: Path) -> None:
    source = tmp_path / "dqn"
    train(datasets, source, "agent.hidden_sizes=[16]", "runner.total_steps=300", "runner.schedule.learning_starts=64")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"dataset_id: x\nseed: 0\nsources:\n  - run: {source}\n    episodes: 3\n    epsilon: 0.3\n")

    def record(dataset_id: str, seed: int) -> dict[str, np.ndarray]:
        cmd = [sys.executable, "scripts/record.py", f"recipe={recipe}", f"dataset_id={dataset_id}", f"seed={seed}"]
        out = subprocess.run(cmd, cwd=ROOT, env=datasets, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-3000:]
        storage = load_dataset(dataset_id).buffer.storage
        assert storage is not None
        return storage

    first, second = record("test/CartPole-v1/a-v0", 0), record("test/CartPole-v1/b-v0", 0)
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])
    other = record("test/CartPole-v1/c-v0", 1)
    assert other["obs"].shape != first["obs"].shape or not np.array_equal(other["obs"], first["obs"])


def test_an_online_run_started_from_an_offline_one_keeps_its_buffer(datasets: dict[str, str], tmp_path: Path) -> None:
    offline = tmp_path / "offline"
    train(datasets, offline, "agent=cql", "agent.hidden_sizes=[16]", "runner.total_steps=100", *TINY)
    stored = len(load_dataset(DATASET).buffer)
    online = tmp_path / "online"
    out = train(
        datasets,
        online,
        "agent=cql",
        "agent.hidden_sizes=[16]",
        "runner=off_policy",
        f"init_from={offline}",
        "runner.total_steps=64",
        "runner.schedule.learning_starts=32",
        "runner.schedule.batch_size=32",
        "runner.eval_freq=0",
        "runner.eval_episodes=1",
        "logger=csv",
    )
    assert f"{stored} transitions in the buffer" in out.stdout
    state = checkpoint.load(online, kind="cardio.runner")
    size = int(np.sum(state["buffer"]["size"]))
    assert size == stored + 64  # the dataset, then the online run's own steps
    obs = state["buffer"]["storage"]["obs"][:, 0]
    dataset_obs = load_dataset(DATASET).buffer.storage["obs"]  # type: ignore[index]
    assert any(np.array_equal(obs[0], row) for row in dataset_obs.reshape(-1, 4))


def test_an_offline_iql_run_takes_its_reward_scale_from_the_datasets_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The build hands the dataset to the agent (``on_dataset``): IQL's rewards are scaled by 1000 over the spread
    of the episode returns. Bug pinned: the hook never called (scale 1)."""
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    env = make_env("Pendulum-v1", seed=0)
    episodes = record_episodes(None, env, 3, epsilon=1.0, seed=0)
    space, actions = env.single_observation_space, env.single_action_space
    write_dataset("test/Pendulum-v1/r-v0", episodes, env_spec=None, observation_space=space, action_space=actions)
    returns = [float(np.sum(ep["reward"])) for ep in episodes]
    overrides = ["agent=iql", "env=Pendulum", "runner.schedule.dataset=test/Pendulum-v1/r-v0", "logger=csv"]
    agent = build_runner(shrink(compose_train(overrides), tmp_path / "run", total_steps=1000)).agent
    assert agent.reward_scale == pytest.approx(1000.0 / (max(returns) - min(returns)))  # type: ignore[attr-defined]
    assert agent.reward_scale != pytest.approx(1.0)  # type: ignore[attr-defined]

"""runner.normalize: VecNormalize's meaning (one set of statistics for all training copies, frozen for evaluation,
saved in checkpoints), raw replay with sample-time normalisation, normalised on-policy rollouts."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

from cardio import checkpoint
from cardio.buffers import CircularBuffer
from cardio.checkpoint import CheckpointError
from cardio.envs import CountingEnv
from cardio.envs.normalize import Normalizer, RunningMeanStd
from cardio.runner import OffPolicySchedule, OnPolicySchedule, Runner
from tests.helpers import pythonpath


class RecordingAgent:
    """Acts 0 and remembers every observation it is shown and every batch it learns from."""

    def __init__(self) -> None:
        self.seen: list[tuple[bool, np.ndarray]] = []
        self.batches: list[dict] = []

    def act(self, obs, explore):
        self.seen.append((explore, np.array(obs)))
        return np.zeros(len(obs), dtype=np.int64), {}

    def update(self, batch):
        self.batches.append(batch)
        return {}

    def state_dict(self):
        return {}

    def load_state_dict(self, state) -> None:
        pass


def two_copies() -> gym.vector.VectorEnv:
    # copies whose observations differ: episodes of 3 and of 7 steps (obs = [episode, t])
    return gym.vector.SyncVectorEnv(
        [lambda: CountingEnv(length=3), lambda: CountingEnv(length=7)], autoreset_mode=AutoresetMode.SAME_STEP
    )


def runner_with(schedule, normalize=True, capacity=400) -> tuple[Runner, RecordingAgent]:
    agent = RecordingAgent()
    eval_env = gym.vector.SyncVectorEnv([lambda: CountingEnv(length=4)], autoreset_mode=AutoresetMode.SAME_STEP)
    runner = Runner(
        two_copies(), agent, CircularBuffer(capacity, num_envs=2, seed=0), schedule, total_steps=1008,
        eval_env=eval_env, seed=0, normalize={"gamma": 0.9} if normalize else None,
    )  # fmt: skip
    return runner, agent


def test_running_mean_std_merges_batches_like_one_big_batch() -> None:
    rng = np.random.default_rng(0)
    chunks = [rng.normal(3.0, 2.0, (n, 2)) for n in (1, 5, 17)]
    rms = RunningMeanStd((2,))
    for chunk in chunks:
        rms.update(chunk)
    everything = np.concatenate(chunks)
    np.testing.assert_allclose(rms.mean, everything.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(rms.var, everything.var(axis=0), rtol=1e-4)


def test_statistics_are_shared_by_the_training_copies() -> None:
    runner, _ = runner_with(OffPolicySchedule(learning_starts=0, train_freq=1, gradient_steps=0, batch_size=4))
    for _ in range(20):
        runner.step()
    norm = runner.normalizer
    assert norm is not None and norm.obs_rms is not None
    # one set of statistics over every observation both copies produced and the agent acted on (stored raw)
    raw_seen = runner.buffer.get(np.arange(2 * 20))["obs"]  # flat index t * N + n: copies interleaved
    np.testing.assert_allclose(norm.obs_rms.count, 2 * 20 + 1e-4)
    assert norm.obs_rms.mean.shape == (2,)
    np.testing.assert_allclose(norm.obs_rms.mean, raw_seen.mean(axis=0), rtol=1e-5)
    # per-copy gymnasium wrappers would keep two different means here: the copies' step counts differ
    t_means = [raw_seen[i::2, 1].mean() for i in (0, 1)]
    assert abs(t_means[0] - t_means[1]) > 0.5


def test_evaluation_uses_the_frozen_training_statistics() -> None:
    runner, agent = runner_with(OffPolicySchedule(learning_starts=0, train_freq=8, gradient_steps=0, batch_size=4))
    runner.step()
    norm = runner.normalizer
    assert norm is not None and norm.obs_rms is not None
    before = norm.state_dict()
    agent.seen.clear()
    runner.evaluate(episodes=2)
    after = norm.state_dict()
    np.testing.assert_array_equal(before["obs_rms"]["mean"], after["obs_rms"]["mean"])
    assert before["obs_rms"]["count"] == after["obs_rms"]["count"]  # evaluation never updates them
    eval_obs = np.concatenate([obs for explore, obs in agent.seen])
    raw = np.array([[e, t] for e in range(2) for t in range(4)], dtype=np.float32)  # episodes of 4 steps
    expected = np.clip((raw - norm.obs_rms.mean) / np.sqrt(norm.obs_rms.var + 1e-8), -10, 10)
    np.testing.assert_allclose(eval_obs, expected, rtol=1e-5)


def test_replay_stores_raw_and_the_agent_learns_from_normalised_batches() -> None:
    runner, agent = runner_with(OffPolicySchedule(learning_starts=0, train_freq=4, gradient_steps=1, batch_size=8))
    runner.step()
    runner.step()
    stored = runner.buffer.get(np.arange(len(runner.buffer)))
    assert stored["obs"][:, 1].max() >= 3  # raw step counts, not normalised values
    batch = agent.batches[-1]
    norm = runner.normalizer
    assert norm is not None
    assert np.abs(batch["obs"]).max() < 3 and batch["obs"].dtype == np.float32
    # every raw reward is 1: scaled by the running spread of the discounted return (gamma 0.9)
    np.testing.assert_allclose(batch["reward"], 1.0 / np.sqrt(norm.ret_rms.var + 1e-8), rtol=1e-5)


def test_on_policy_rollouts_hold_what_the_agent_saw() -> None:
    runner, agent = runner_with(OnPolicySchedule(n_steps=6), capacity=12)
    agent.seen.clear()
    runner.step()
    rollout = agent.batches[-1]  # [T, N, ...]
    shown = np.stack([obs for _, obs in agent.seen])  # [T, N, 2]
    np.testing.assert_allclose(rollout["obs"], shown, rtol=1e-6)
    assert np.abs(rollout["obs"]).max() < 10.0


def test_reward_scale_is_the_discounted_returns_spread() -> None:
    norm = Normalizer(norm_obs=False, gamma=0.5)
    valid = np.ones(1, dtype=bool)
    for done in (False, False, True, False):
        norm.update_returns(np.array([1.0]), np.array([done]), valid)
    # R = 0.5 R + 1: 1, 1.5, 1.75 (the episode ends: R restarts), then 1 again
    expected = np.array([1.0, 1.5, 1.75, 1.0])
    np.testing.assert_allclose(norm.ret_rms.mean, expected.mean(), rtol=1e-3)
    np.testing.assert_allclose(norm.normalize_reward(np.array([2.0])), 2.0 / np.sqrt(expected.var()), rtol=1e-3)


def test_statistics_round_trip_through_a_checkpoint(tmp_path: Path) -> None:
    runner, _ = runner_with(OffPolicySchedule(learning_starts=0, train_freq=8, gradient_steps=0, batch_size=4))
    runner.step()
    path = runner.save(tmp_path / "last.ckpt")
    fresh, _ = runner_with(OffPolicySchedule(learning_starts=0, train_freq=8, gradient_steps=0, batch_size=4))
    fresh.load(path)
    saved, loaded = runner.normalizer.state_dict(), fresh.normalizer.state_dict()  # type: ignore[union-attr]
    np.testing.assert_array_equal(saved["obs_rms"]["var"], loaded["obs_rms"]["var"])
    assert saved["ret_rms"]["count"] == loaded["ret_rms"]["count"] > 1
    np.testing.assert_array_equal(saved["returns"], loaded["returns"])
    plain, _ = runner_with(OffPolicySchedule(learning_starts=0, train_freq=8, batch_size=4), normalize=False)
    with pytest.raises(CheckpointError, match=r"disagree on runner\.normalize"):
        plain.load(path)
    # Without the env's state the episodes restart, and the running returns, which were theirs, with them.
    state = checkpoint.load(path, "cardio.runner")
    state["gatherer"]["env"] = None
    restarted, _ = runner_with(OffPolicySchedule(learning_starts=0, train_freq=8, gradient_steps=0, batch_size=4))
    with pytest.warns(UserWarning, match="state was not saved"):
        restarted.load_state_dict(state)
    assert restarted.normalizer.returns is None  # type: ignore[union-attr]
    assert restarted.normalizer.state_dict()["ret_rms"]["count"] == saved["ret_rms"]["count"]  # type: ignore[union-attr]


def test_train_then_evaluate_restores_the_frozen_statistics(tmp_path: Path) -> None:
    """The real thing: scripts/train.py with runner.normalize, then scripts/evaluate.py from weights.npz and
    normalize.npz (no pickle): same eval env seed, same deterministic policy, same statistics -> the same returns."""
    import json
    import os
    import subprocess
    import sys

    from cardio import checkpoint
    from scripts.evaluate import main as evaluate

    root = Path(__file__).resolve().parents[1]
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "scripts/train.py", f"hydra.run.dir={run_dir}", "agent=ppo", "env=Pendulum", "zoo=none",
           "runner.normalize={gamma:0.9}", "runner.total_steps=512", "runner.schedule.n_steps=128",
           "agent.batch_size=64", "runner.eval_freq=0", "runner.eval_episodes=2", "logger=csv"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": pythonpath(root), "WANDB_MODE": "disabled"}
    subprocess.run(cmd, cwd=root, env=env, check=True, capture_output=True, timeout=300)
    evals = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    trained = [e["eval/mean_reward"] for e in evals if "eval/mean_reward" in e][-1]
    saved = checkpoint.load(run_dir, "cardio.runner")["normalizer"]
    assert saved["obs_rms"]["count"] > 512  # one set of statistics over every training observation
    metrics = evaluate([f"run={run_dir}", "episodes=2"])
    assert metrics["eval/mean_reward"] == pytest.approx(trained)
    (run_dir / "normalize.npz").unlink()  # without the statistics the weights cannot be evaluated: refused
    with pytest.raises(SystemExit):
        evaluate([f"run={run_dir}", "episodes=2"])

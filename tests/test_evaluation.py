"""Evaluation protocol: the env's own returns (not the wrapped rewards), a separate seeded eval env, determinism."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode

from cardio.buffers import CircularBuffer
from cardio.envs import CountingEnv, make_env
from cardio.runner import EVAL_SEED_OFFSET, OnPolicySchedule, Runner, ScheduleError

torch.set_num_threads(1)


class ScaleReward(gym.RewardWrapper):
    """A user wrapper that changes what the agent learns from (here x10); evaluation must not see it."""

    def reward(self, reward: float) -> float:
        return 10.0 * float(reward)


class ZeroAgent:
    """Acts 0 everywhere; learns nothing."""

    def act(self, obs, explore):
        return np.zeros(len(obs), dtype=np.int64), {}

    def update(self, batch):
        return {}

    def state_dict(self):
        return {}

    def load_state_dict(self, state) -> None:
        pass


def counting_runner(env: gym.vector.VectorEnv, eval_env: gym.vector.VectorEnv) -> Runner:
    buffer = CircularBuffer(4 * env.num_envs, num_envs=env.num_envs)
    return Runner(env, ZeroAgent(), buffer, OnPolicySchedule(n_steps=4), total_steps=64, eval_env=eval_env, seed=0)


@pytest.mark.parametrize("autoreset", ["same_step", "next_step"])
def test_eval_returns_are_the_envs_own(autoreset: str) -> None:
    """5 steps of reward 1, scaled x10 by a user wrapper: training sees 10s, the reported returns are 5."""
    make = lambda: make_env(  # noqa: E731
        "cardio/Counting-v0", num_envs=2, kwargs={"length": 5}, wrappers=[ScaleReward], autoreset=autoreset
    )
    runner = counting_runner(make(), make())
    runner.step()
    assert runner.buffer.as_rollout()["reward"].max() == 10.0  # the agent learns from the wrapped reward
    runner.run()
    assert runner.log_now()["rollout/ep_rew_mean"] == 5.0
    metrics = runner.evaluate(4)
    assert metrics["eval/mean_reward"] == 5.0 and metrics["eval/mean_ep_length"] == 5.0


def test_eval_returns_negative_control() -> None:
    """Without make_env's innermost recorder, the only returns to be had are the wrapped ones (50, not 5)."""
    make = lambda: gym.vector.SyncVectorEnv(  # noqa: E731
        [lambda: ScaleReward(CountingEnv(length=5))] * 2, autoreset_mode=AutoresetMode.SAME_STEP
    )
    assert counting_runner(make(), make()).evaluate(4)["eval/mean_reward"] == 50.0


@pytest.mark.parametrize("episodes", [0, -3, 2.5])
def test_evaluate_refuses_a_count_of_episodes_that_is_not_positive(episodes: float) -> None:
    """``evaluate(0)`` read 0 as "the default" and reported another count's numbers; a negative count gave NaN."""
    make = lambda: gym.vector.SyncVectorEnv([lambda: CountingEnv(length=5)] * 2, autoreset_mode=AutoresetMode.SAME_STEP)  # noqa: E731
    with pytest.raises(ScheduleError, match=rf"evaluate\(episodes={episodes}\): .* positive integer"):
        counting_runner(make(), make()).evaluate(episodes)  # type: ignore[arg-type]


def test_eval_env_has_its_own_seed() -> None:
    """The eval env's first reset uses seed + EVAL_SEED_OFFSET, so it never replays the training episodes."""
    env, eval_env = make_env("CartPole-v1", num_envs=1), make_env("CartPole-v1", num_envs=1)
    runner = Runner(env, ZeroAgent(), CircularBuffer(4), OnPolicySchedule(4), total_steps=4, eval_env=eval_env, seed=3)
    runner.evaluate(1)
    runner.step()
    train_first = runner.buffer.as_rollout()["obs"][0, 0]
    assert np.allclose(train_first, gym.make("CartPole-v1").reset(seed=3)[0])
    eval_reset = gym.make("CartPole-v1").reset(seed=3 + EVAL_SEED_OFFSET)[0]
    assert not np.allclose(train_first, eval_reset)


def test_evaluation_is_deterministic_and_repeatable() -> None:
    """Deterministic actions: two evaluations of the same PPO policy on equally seeded eval envs agree exactly."""
    from cardio.agents.ppo import PPOConfig

    results = []
    for _ in range(2):
        torch.manual_seed(0)
        env, eval_env = make_env("CartPole-v1", num_envs=2, seed=0), make_env("CartPole-v1", num_envs=1, seed=0)
        agent = PPOConfig().build(env.single_observation_space, env.single_action_space, seed=0)
        runner = Runner(
            env,
            agent,
            CircularBuffer(64, 2),
            OnPolicySchedule(32),
            total_steps=64,
            eval_env=eval_env,
            seed=0,
            eval_episodes=2,
        )
        runner.run()
        results.append(runner.evaluate(3))
    assert results[0] == results[1]

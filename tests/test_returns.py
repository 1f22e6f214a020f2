"""GAE (cardio/returns.py) against hand computations, and the infinite-horizon check of truncation handling.

Hand cases use gamma = lam = 0.5 (so gamma * lam = 0.25), rewards 1, 2, 3, 4 and values 10, 20, 30, 40 for
``V(s_t)``; ``V(s'_t)`` is 20, 30, 99, 50, where 99 is the value of the true final observation of an episode
ending on step 2. Expected advantages are written as the sums that produce them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
import pytest
import torch

from cardio.agents.a2c import A2CConfig
from cardio.agents.ppo import PPOConfig
from cardio.buffers.circular import CircularBuffer
from cardio.envs import make_env
from cardio.returns import explained_variance, gae
from cardio.runner import OnPolicySchedule, Runner

torch.set_num_threads(1)  # small nets on a shared 2-core machine: extra threads only contend

F, T = False, True
REWARD = [1.0, 2.0, 3.0, 4.0]
VALUE = [10.0, 20.0, 30.0, 40.0]
NEXT_VALUE = [20.0, 30.0, 99.0, 50.0]


@dataclass
class GAECase:
    """One column of a rollout and its advantages worked out by hand (returns are advantages + values)."""

    advantages: list[float]
    terminated: list[bool] = field(default_factory=lambda: [F, F, F, F])
    truncated: list[bool] = field(default_factory=lambda: [F, F, F, F])
    gamma: float = 0.5
    lam: float = 0.5
    next_value: list[float] = field(default_factory=lambda: NEXT_VALUE)


# deltas without an episode end: 1 + .5*20 - 10 = 1, 2 + .5*30 - 20 = -3, 3 + .5*99 - 30 = 22.5, 4 + .5*50 - 40 = -11
CASES = {
    "NoEpisodeEnd": GAECase(
        advantages=[
            1 + 0.25 * (-3 + 0.25 * (22.5 + 0.25 * -11)),
            -3 + 0.25 * (22.5 + 0.25 * -11),
            22.5 + 0.25 * -11,
            -11,
        ]
    ),
    # step 2 terminates: its delta drops V(s'_2) (3 - 30 = -27) and the lambda chain is cut after it
    "TerminatedAtStep2": GAECase(
        advantages=[1 + 0.25 * (-3 + 0.25 * -27), -3 + 0.25 * -27, -27, -11], terminated=[F, F, T, F]
    ),
    # step 2 is a time limit: its delta keeps V(true final obs) = 99, the chain is still cut after it
    "TruncatedAtStep2": GAECase(
        advantages=[1 + 0.25 * (-3 + 0.25 * 22.5), -3 + 0.25 * 22.5, 22.5, -11], truncated=[F, F, T, F]
    ),
    # lam = 0: advantages are the one-step TD errors
    "LambdaZeroIsTD": GAECase(advantages=[1, -3, 22.5, -11], gamma=0.5, lam=0.0),
    # gamma = lam = 1 within one episode (so V(s'_t) = V(s_{t+1})): the Monte-Carlo return to the rollout end,
    # bootstrapped with V(s'_3) = 50, minus V(s_t)
    "LambdaOneIsMonteCarlo": GAECase(
        advantages=[1 + 2 + 3 + 4 + 50 - 10, 2 + 3 + 4 + 50 - 20, 3 + 4 + 50 - 30, 4 + 50 - 40],
        gamma=1.0,
        lam=1.0,
        next_value=[20.0, 30.0, 40.0, 50.0],
    ),
}


def column(values: list) -> np.ndarray:
    return np.asarray(values)[:, None]  # [T, 1]


@pytest.mark.parametrize("name", CASES)
def test_gae_matches_hand_computation(name: str) -> None:
    case = CASES[name]
    args = (column(REWARD), column(VALUE), column(case.next_value), column(case.terminated), column(case.truncated))
    advantages, returns = gae(*args, gamma=case.gamma, lam=case.lam)
    np.testing.assert_allclose(advantages[:, 0], case.advantages, rtol=1e-6)
    np.testing.assert_allclose(returns[:, 0], np.asarray(case.advantages) + VALUE, rtol=1e-6)


def test_gae_keeps_env_columns_apart() -> None:
    """Two envs side by side give each its own single-column answer."""
    a, b = CASES["TerminatedAtStep2"], CASES["TruncatedAtStep2"]
    stack = lambda x, y: np.stack([x, y], axis=1)  # noqa: E731
    advantages, _ = gae(
        stack(REWARD, REWARD), stack(VALUE, VALUE), stack(NEXT_VALUE, NEXT_VALUE),
        stack(a.terminated, b.terminated), stack(a.truncated, b.truncated), gamma=0.5, lam=0.5,
    )  # fmt: skip
    np.testing.assert_allclose(advantages, stack(a.advantages, b.advantages), rtol=1e-6)


def test_explained_variance() -> None:
    target = np.array([1.0, 2.0, 3.0])
    assert explained_variance(target, target) == 1.0
    assert explained_variance(np.full(3, 2.0), target) == 0.0
    assert np.isnan(explained_variance(target, np.ones(3)))


# ------------------------------------------------------------------------------------------ infinite horizon
class Blind(gym.ObservationWrapper):
    """Every observation is 0: the state never changes, so the true value is the same at every step."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.observation_space = gym.spaces.Box(0.0, 1.0, (1,), np.float32)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return np.zeros(1, np.float32)


class TruncationAsTermination(gym.Wrapper):
    """The bug under test, planted in the env: a time limit reported as a terminal state."""

    def step(self, action):  # type: ignore[no-untyped-def]
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated or truncated, False, info


AGENTS = {
    "PPO": PPOConfig(gamma=0.98, gae_lambda=0.95, lr=3e-3, batch_size=128),
    "A2C": A2CConfig(gamma=0.98, gae_lambda=0.95, lr=1e-2, use_rms_prop=False),
}


def learned_value(agent_name: str, bug: bool, total_steps: int = 8192) -> float:
    """Train on reward 1 per step, truncated after 8 steps, gamma 0.98; return the critic's V(s0)."""
    torch.manual_seed(0)
    wrappers: list = [Blind, TruncationAsTermination] if bug else [Blind]
    kwargs = {"length": 8, "end": "truncate", "rewards": 1.0}
    env = make_env("cardio/Counting-v0", num_envs=4, seed=0, kwargs=kwargs, wrappers=wrappers)
    agent = AGENTS[agent_name].build(env.single_observation_space, env.single_action_space, seed=0)
    n_steps = 32
    buffer = CircularBuffer(n_steps * 4, num_envs=4, seed=0)
    Runner(env, agent, buffer, OnPolicySchedule(n_steps), total_steps=total_steps, seed=0, log_interval=10**9).run()
    return agent.net.value(torch.zeros(1, 1)).item()  # type: ignore[attr-defined]


@pytest.mark.parametrize("agent_name", AGENTS)
def test_infinite_horizon(agent_name: str) -> None:
    """SB3's check: a time limit is not a terminal, so V(s0) -> 1 / (1 - 0.98) = 50."""
    assert abs(learned_value(agent_name, bug=False) - 50.0) < 1.0


@pytest.mark.parametrize("agent_name", AGENTS)
def test_infinite_horizon_negative_control(agent_name: str) -> None:
    """Treating truncation as termination caps the value near sum_k<8 0.98^k / 2, far below 50."""
    assert abs(learned_value(agent_name, bug=True, total_steps=2048) - 50.0) > 20.0

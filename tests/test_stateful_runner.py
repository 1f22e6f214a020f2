"""Runner support for recurrent agents (``initial_state``): one state per env, reset at episode ends."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from cardio.acting import Actor
from cardio.buffers import CircularBuffer
from cardio.envs import make_env
from cardio.runner import OffPolicySchedule, OnPolicySchedule, Runner

LENGTH = 5  # CountingEnv episode length, train and eval


class StepCountingAgent:
    """State = steps taken in the current episode, so it must equal the ``t`` entry of CountingEnv's obs.

    Rows showing a final obs (``t == LENGTH``: NEXT_STEP reset steps, whose action the env ignores) and first
    episodes (``episode == 0``: the off-policy warm-up acts randomly without advancing the state) are not checked.
    """

    def __init__(self, store_state: bool = True) -> None:
        self.store_state = store_state  # off-policy warm-up steps carry no extras, so nothing may be stored there
        self.mismatches = 0
        self.checked = 0

    def initial_state(self, num_envs: int) -> np.ndarray:
        return np.zeros(num_envs, dtype=np.float32)

    def act(self, obs, explore, state):
        checked = (obs[:, 1] < LENGTH) & (obs[:, 0] >= 1)
        self.checked += int(checked.sum())
        self.mismatches += int(np.sum((state != obs[:, 1]) & checked))
        extras = {"next_state": state + 1} | ({"state": state.copy()} if self.store_state else {})
        return np.zeros(len(obs), dtype=np.int64), extras

    def update(self, batch):
        return {}

    def state_dict(self):
        return {}

    def load_state_dict(self, state) -> None:
        pass


def stateful_runner(autoreset: str, schedule, num_envs: int = 3, capacity: int = 300) -> Runner:
    env = make_env("cardio/Counting-v0", num_envs=num_envs, kwargs={"length": LENGTH}, autoreset=autoreset)
    eval_env = make_env("cardio/Counting-v0", num_envs=2, kwargs={"length": LENGTH}, autoreset=autoreset)
    buffer = CircularBuffer(capacity, num_envs=num_envs)
    agent = StepCountingAgent(store_state=isinstance(schedule, OnPolicySchedule))
    return Runner(env, agent, buffer, schedule, total_steps=300, eval_env=eval_env, seed=0)


@pytest.mark.parametrize("autoreset", ["same_step", "next_step"])
@pytest.mark.parametrize("on_policy", [False, True], ids=["off_policy", "on_policy"])
def test_state_follows_each_env_and_restarts_with_its_episode(autoreset: str, on_policy: bool) -> None:
    schedule = OnPolicySchedule(n_steps=10) if on_policy else OffPolicySchedule(learning_starts=1, batch_size=1)
    runner = stateful_runner(autoreset, schedule, capacity=30 if on_policy else 300)
    for _ in range(12):
        runner.step()
    runner.evaluate(episodes=5)
    runner.step()  # training resumes with its own state after an evaluation
    agent = runner.agent
    assert agent.checked > 100 and agent.mismatches == 0
    if on_policy:
        stored = runner.buffer.get(np.arange(len(runner.buffer)))
        np.testing.assert_array_equal(stored["state"], stored["obs"][:, 1])  # extras["state"] is stored
        assert "next_state" not in stored  # next_state is the runner's


def test_negative_control_without_row_resets_the_state_drifts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Actor, "start_episodes", lambda self, *args, **kwargs: None)
    runner = stateful_runner("same_step", OffPolicySchedule(learning_starts=1, batch_size=1))
    for _ in range(8):
        runner.step()
    assert runner.agent.mismatches > 0


def test_stateless_agents_are_called_without_state() -> None:
    class Stateless:
        update, state_dict, load_state_dict = (
            StepCountingAgent.update,
            StepCountingAgent.state_dict,
            StepCountingAgent.load_state_dict,
        )

        def act(self, obs, explore):  # no state argument: would raise TypeError if one were passed
            return np.zeros(len(obs), dtype=np.int64), {}

    env = make_env("cardio/Counting-v0", num_envs=2)
    runner = Runner(env, Stateless(), CircularBuffer(64, 2), OffPolicySchedule(learning_starts=1, batch_size=1))
    runner.step()
    assert runner.policy_state is None and isinstance(env, gym.vector.VectorEnv)


@pytest.mark.parametrize("keep_state", [True, False], ids=["restored", "negative_control"])
def test_checkpoint_carries_the_recurrent_state(tmp_path, keep_state: bool) -> None:
    schedule = OffPolicySchedule(learning_starts=1, batch_size=1)
    runner = stateful_runner("same_step", schedule)
    for _ in range(7):  # mid-episode: the state rows are not all zero
        runner.step()
    assert np.any(runner.policy_state != 0)
    path = runner.save(tmp_path / "last.ckpt")
    resumed = stateful_runner("same_step", schedule)
    resumed.load(path)
    if not keep_state:
        resumed.reset_policy_state()  # what a checkpoint without the state would give
    for _ in range(6):
        resumed.step()
    assert (resumed.agent.mismatches == 0) == keep_state

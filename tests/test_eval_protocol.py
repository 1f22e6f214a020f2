"""The evaluation protocol, on the runner's own eval env as cardio/build.py makes it: seeded apart from training
(and reproducibly), and never exploring (the deterministic policy, whatever the exploration settings)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from omegaconf import open_dict

from cardio.agents.heads import to_env_bounds
from cardio.build import build_runner
from cardio.runner import EVAL_SEED_OFFSET
from tests.conftest import compose_train, shrink


class Record(gym.Wrapper):
    """Keeps every reset observation and every action that reaches the env."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.resets: list[np.ndarray] = []
        self.obs: list[np.ndarray] = []  # the observation each action was chosen on
        self.actions: list[np.ndarray] = []
        self._last: np.ndarray | None = None

    def reset(self, **kwargs):  # type: ignore[no-untyped-def]
        obs, info = self.env.reset(**kwargs)
        self.resets.append(np.array(obs))
        self._last = np.array(obs)
        return obs, info

    def step(self, action):  # type: ignore[no-untyped-def]
        self.obs.append(self._last)
        self.actions.append(np.array(action))
        obs, *rest = self.env.step(action)
        self._last = np.array(obs)
        return (obs, *rest)


def recorder(env: gym.vector.VectorEnv) -> Record:
    layer = env.envs[0]  # type: ignore[attr-defined]
    while not isinstance(layer, Record):
        layer = layer.env
    return layer


ALWAYS_EXPLORING_DQN = (
    "~zoo",
    "agent.exploration_initial_eps=1.0",
    "agent.exploration_final_eps=1.0",
    "agent.hidden_sizes=[16]",
)


def runner_for(tmp_path, *overrides: str, seed: int = 3):
    cfg = compose_train(["env.wrappers=[tests.test_eval_protocol.Record]", f"seed={seed}", *overrides])
    cfg = shrink(cfg, tmp_path, total_steps=64)
    with open_dict(cfg):
        cfg.env.num_envs = 1
        cfg.runner.checkpoint_dir = None
    torch.manual_seed(0)
    return build_runner(cfg)


def test_eval_env_is_seeded_apart_from_training_and_reproducibly(tmp_path) -> None:
    def eval_and_train_resets(seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
        runner = runner_for(tmp_path, "~zoo", "agent.hidden_sizes=[16]", seed=seed)
        for _ in range(2):
            runner.evaluate(3)
        runner.step()
        while len(recorder(runner.gatherer.env).resets) < 3:  # a few training episodes
            runner.step()
        return recorder(runner.eval_gatherer.env).resets, recorder(runner.gatherer.env).resets

    eval_resets, train_resets = eval_and_train_resets(seed=3)
    assert len(eval_resets) >= 6  # 2 evaluations x 3 episodes (plus the resets the autoreset does)
    # the eval env's first episode is the one seed + EVAL_SEED_OFFSET gives, the training env's the one seed gives
    np.testing.assert_array_equal(eval_resets[0], gym.make("CartPole-v1").reset(seed=3 + EVAL_SEED_OFFSET)[0])
    np.testing.assert_array_equal(train_resets[0], gym.make("CartPole-v1").reset(seed=3)[0])
    # no evaluation episode starts where a training episode started
    assert not any(np.allclose(e, t) for e in eval_resets for t in train_resets)
    # the second evaluation plays new episodes, and the whole sequence is reproducible from the seed
    assert not np.allclose(eval_resets[0], eval_resets[3])
    again, _ = eval_and_train_resets(seed=3)
    np.testing.assert_array_equal(np.array(eval_resets), np.array(again))
    other, _ = eval_and_train_resets(seed=4)
    assert not np.allclose(eval_resets[0], other[0])


def test_dqn_evaluation_is_greedy_even_with_epsilon_one(tmp_path) -> None:
    runner = runner_for(tmp_path, *ALWAYS_EXPLORING_DQN)
    runner.run()
    agent = runner.agent
    assert agent.epsilon == 1.0  # every training action is uniform-random
    rec = recorder(runner.eval_gatherer.env)
    rec.obs.clear()
    rec.actions.clear()
    runner.evaluate(3)
    obs, actions = np.array(rec.obs), np.array(rec.actions)
    with torch.no_grad():
        q = agent.q_net(torch.as_tensor(obs)).numpy()
    assert len(actions) > 20 and np.all(np.ptp(q, axis=1) > 0)  # no ties: the greedy action is unique
    np.testing.assert_array_equal(actions, q.argmax(axis=1))  # exploring would match only about half


def test_sac_evaluation_takes_the_mean_action(tmp_path) -> None:
    runner = runner_for(tmp_path, "agent=sac", "env=Pendulum", "~zoo", "agent.hidden_sizes=[16]")
    runner.run()
    rec = recorder(runner.eval_gatherer.env)
    rec.obs.clear()
    rec.actions.clear()
    runner.evaluate(1)
    obs, actions = np.array(rec.obs), np.array(rec.actions)
    agent = runner.agent
    with torch.no_grad():
        mean_action, _ = agent.actor(torch.as_tensor(obs), deterministic=True)
        expected = to_env_bounds(mean_action, agent.low, agent.high).numpy()
    assert len(actions) == 200
    np.testing.assert_allclose(actions, expected, rtol=1e-5, atol=1e-6)  # a sampled action would be off by ~std
    with torch.no_grad():
        sampled, _ = agent.actor(torch.as_tensor(obs))
    assert np.abs(to_env_bounds(sampled, agent.low, agent.high).numpy() - expected).mean() > 0.05


@pytest.mark.parametrize("explore", [True])
def test_negative_control_an_exploring_evaluation_is_caught(tmp_path, monkeypatch, explore: bool) -> None:
    """Plant the bug (evaluation acting with explore=True): the DQN comparison above must fail."""
    runner = runner_for(tmp_path, *ALWAYS_EXPLORING_DQN)
    runner.run()
    original = runner.actor.policy
    monkeypatch.setattr(runner.actor, "policy", lambda *_, evaluation=False, **__: original(explore, evaluation))
    rec = recorder(runner.eval_gatherer.env)
    rec.obs.clear()
    rec.actions.clear()
    runner.evaluate(3)
    with torch.no_grad():
        greedy = runner.agent.q_net(torch.as_tensor(np.array(rec.obs))).numpy().argmax(axis=1)
    assert np.mean(np.array(rec.actions) == greedy) < 0.8

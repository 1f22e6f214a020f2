"""Gatherer behaviour under gymnasium 1.x autoreset: reset rows never stored, true final obs kept."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

from cardio.envs import CountingEnv, make_env
from cardio.gatherer import Gatherer

MODES = [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP, AutoresetMode.DISABLED]


def counting_vec(mode: AutoresetMode, num_envs: int = 2, end: str = "terminate", lengths=(3, 4)):
    fns = [lambda k=k: CountingEnv(length=lengths[k % len(lengths)], end=end) for k in range(num_envs)]
    return gym.vector.SyncVectorEnv(fns, autoreset_mode=mode)


def collect(gatherer: Gatherer, steps: int) -> list[dict[str, np.ndarray]]:
    """Every emitted transition row as its own dict."""
    rows = []
    for _ in range(steps):
        t, valid = gatherer.step(gatherer.random_policy)
        for i in np.flatnonzero(valid):
            rows.append({k: np.asarray(v)[i] for k, v in t.items()})
    return rows


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.name)
@pytest.mark.parametrize("end", ["terminate", "truncate"])
def test_every_row_is_a_real_transition(mode: AutoresetMode, end: str) -> None:
    """obs = [episode, t]: a real transition has next_t = t + 1 in the same episode; a reset obs has t = 0."""
    g = Gatherer(counting_vec(mode, end=end), seed=0)
    rows = collect(g, 40)
    assert rows
    for r in rows:
        assert r["next_obs"][0] == r["obs"][0], "a transition crossed into another episode"
        assert r["next_obs"][1] == r["obs"][1] + 1, "next_obs is not the successor (a done->reset pair?)"
        assert r["next_obs"][1] != 0  # a reset observation never shows up as next_obs


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.name)
def test_truncation_keeps_final_obs_and_is_not_termination(mode: AutoresetMode) -> None:
    g = Gatherer(counting_vec(mode, end="truncate", lengths=(3,)), seed=0)
    rows = collect(g, 20)
    ends = [r for r in rows if r["truncated"]]
    assert ends and all(not r["terminated"] for r in rows)
    for r in ends:
        assert r["next_obs"][1] == 3  # the true final observation, not the reset one


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.name)
def test_episode_stats_count_real_steps_only(mode: AutoresetMode) -> None:
    env = gym.vector.SyncVectorEnv(
        [lambda: CountingEnv(length=4, rewards=[1.0, 2.0, 3.0, 4.0])] * 2, autoreset_mode=mode
    )
    g = Gatherer(env, seed=0)
    collect(g, 30)
    assert g.stats.episodes >= 10
    assert set(g.stats.returns) == {10.0} and set(g.stats.lengths) == {4}
    assert g.stats.metrics()["rollout/ep_rew_mean"] == 10.0


def test_next_step_mode_masks_exactly_the_reset_step() -> None:
    g = Gatherer(counting_vec(AutoresetMode.NEXT_STEP, num_envs=1, lengths=(2,)), seed=0)
    valids = [bool(g.step(g.random_policy)[1][0]) for _ in range(6)]
    assert valids == [True, True, False, True, True, False]  # 2 steps, then the reset step


def test_plain_env_is_wrapped_as_one_env_vector() -> None:
    g = Gatherer(CountingEnv(length=3), seed=0)
    t, valid = g.step(g.random_policy)
    assert g.num_envs == 1 and t["obs"].shape == (1, 2) and valid.tolist() == [True]


def test_make_env_builds_seeded_same_step_envs() -> None:
    env = make_env("CartPole-v1", num_envs=3, seed=7)
    assert env.num_envs == 3 and env.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    a = Gatherer(env, seed=7).reset()
    b = Gatherer(make_env("CartPole-v1", num_envs=3, seed=7), seed=7).reset()
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"id": "CartPol-v1"}, "env.id='CartPol-v1': no gymnasium env registered.*CartPole-v1"),
        ({"id": "CartPole-v1", "num_envs": 0}, "env.num_envs must be positive"),
        ({"id": "CartPole-v1", "autoreset": "never"}, "env.autoreset must be one of"),
    ],
)
def test_make_env_refuses_bad_options(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make_env(**kwargs)

"""The vector envs make_env builds beyond SyncVectorEnv: gymnasium's native ones and the one-env fast path.

The native CartPole vector env autoresets NEXT_STEP: the step after an episode end returns the reset observation
and is not a transition. The transition contract of tests/test_gatherer.py must hold on it: every stored
``obs -> next_obs`` is one step of CartPole's physics (a done->reset pair is not), and terminal rows keep the
true final observation. CartPole's physics is replayed from the stored obs with the single env to check it.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.envs.classic_control.cartpole import CartPoleEnv
from gymnasium.vector import AutoresetMode

from cardio.buffers import CircularBuffer
from cardio.envs import CountingEnv, make_env
from cardio.envs.single import OneEnvVector
from cardio.gatherer import Gatherer

NATIVE = {"vectorization": "vector_entry_point", "autoreset": "next_step"}


def successor(obs: np.ndarray, action: int) -> tuple[np.ndarray, bool]:
    """CartPole's next observation and termination flag from ``obs`` under ``action``."""
    env = CartPoleEnv()
    env.reset(seed=0)
    env.state = obs.astype(np.float64)
    next_obs, _, terminated, _, _ = env.step(int(action))
    return next_obs, terminated


def collect_native(num_envs: int, steps: int, seed: int = 0) -> tuple[CircularBuffer, Gatherer, list[np.ndarray]]:
    env = make_env("CartPole-v1", num_envs=num_envs, seed=seed, **NATIVE)
    gatherer = Gatherer(env, seed=seed)
    buffer = CircularBuffer(10_000, num_envs=num_envs)
    valids = []
    for _ in range(steps):
        transition, valid = gatherer.step(gatherer.random_policy)
        buffer.add(transition, valid)
        valids.append(valid.copy())
    return buffer, gatherer, valids


def test_native_vector_env_is_built_with_its_own_autoreset() -> None:
    env = make_env("CartPole-v1", num_envs=8, seed=0, **NATIVE)
    assert type(env).__name__ == "CartPoleVectorEnv" and env.num_envs == 8
    assert env.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP


def test_native_vector_env_stores_only_real_transitions_with_true_final_obs() -> None:
    buffer, _, valids = collect_native(num_envs=8, steps=150)
    assert not all(v.all() for v in valids), "no reset row was ever masked: the test saw no episode end"
    batch = buffer.get(_stored(buffer))
    ends = 0
    for obs, action, next_obs, terminated in zip(
        batch["obs"], batch["action"], batch["next_obs"], batch["terminated"], strict=True
    ):
        expected, expected_terminated = successor(obs, action)
        np.testing.assert_allclose(next_obs, expected, atol=1e-4, err_msg="a stored pair is not one physics step")
        assert bool(terminated) == expected_terminated
        ends += bool(terminated)
    assert ends >= 20  # terminal rows were checked too: their next_obs is the final state, not a reset one


def _stored(buffer: CircularBuffer) -> np.ndarray:
    """Flat indices of every stored transition (streams of unequal length under NEXT_STEP)."""
    t = np.arange(buffer.slots_per_env)[:, None]
    mask = t < buffer.size[None, :]
    return (t * buffer.num_envs + np.arange(buffer.num_envs)[None, :])[mask]


def test_native_vector_env_episode_statistics_are_the_envs_own() -> None:
    """CartPole pays 1 per step: each finished episode's return equals its length, and the lengths add up to
    the transitions the buffer holds for the finished episodes."""
    _, gatherer, _ = collect_native(num_envs=4, steps=200)
    stats = gatherer.stats
    assert stats.episodes >= 20
    assert list(stats.returns) == [float(n) for n in stats.lengths]
    metrics = stats.metrics()
    assert metrics["rollout/ep_rew_mean"] == metrics["rollout/ep_len_mean"] > 8
    # every valid row belongs to an episode: finished lengths plus the running ones make up the step count
    assert sum(stats.lengths) + int(gatherer.ep_length.clip(min=0).sum()) == stats.env_steps


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"id": "Pendulum-v1"}, r"env 'Pendulum-v1' has no native vector implementation"),
        (
            {"id": "CartPole-v1", "wrappers": ["cardio.envs.wrappers.MaskVelocity"]},
            r"per-copy wrappers, but env 'CartPole-v1'",
        ),
        ({"id": "CartPole-v1", "autoreset": "same_step"}, r"env.autoreset='same_step'.*'CartPole-v1'.*next_step"),
    ],
)
def test_native_vector_env_refusals_name_the_env_and_the_way_out(kwargs: dict, match: str) -> None:
    options = {**NATIVE, **kwargs}
    with pytest.raises(ValueError, match=match):
        make_env(num_envs=2, **options)


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP, AutoresetMode.DISABLED])
@pytest.mark.parametrize("env_id", ["cardio/Counting-v0", "CartPole-v1"])
def test_one_env_vector_steps_exactly_like_sync_vector_env(mode: AutoresetMode, env_id: str) -> None:
    """Same observations, rewards, flags and infos as ``SyncVectorEnv`` over several episodes, in every mode."""
    kwargs = {"length": 3} if env_id.startswith("cardio") else {}

    def make_one() -> gym.Env:
        return gym.wrappers.RecordEpisodeStatistics(gym.make(env_id, **kwargs))

    fast, reference = (
        OneEnvVector(make_one, autoreset_mode=mode),
        gym.vector.SyncVectorEnv([make_one], autoreset_mode=mode),
    )
    got, want = fast.reset(seed=3), reference.reset(seed=3)
    np.testing.assert_array_equal(got[0], want[0])
    actions = np.random.default_rng(0).integers(0, 2, size=(60, 1))
    for action in actions:
        got, want = fast.step(action), reference.step(action)
        for a, b in zip(got[:4], want[:4], strict=True):
            np.testing.assert_array_equal(a, b)
            assert a.shape == b.shape
        assert got[4].keys() == want[4].keys()
        if "final_obs" in want[4]:
            np.testing.assert_array_equal(got[4]["final_obs"][0], want[4]["final_obs"][0])
        if mode == AutoresetMode.DISABLED and (got[2] | got[3]).any():
            np.testing.assert_array_equal(
                fast.reset(options={"reset_mask": np.ones(1, bool)})[0],
                reference.reset(options={"reset_mask": np.ones(1, bool)})[0],
            )


def test_make_env_uses_the_one_env_vector_for_one_sync_copy() -> None:
    assert isinstance(make_env("CartPole-v1", num_envs=1), OneEnvVector)
    assert not isinstance(make_env("CartPole-v1", num_envs=2), OneEnvVector)
    assert isinstance(Gatherer(CountingEnv()).env, OneEnvVector)


def test_an_episode_ended_by_a_user_wrapper_still_has_its_return() -> None:
    """A TimeLimit above make_env's recorder ends episodes the recorder never sees: the gatherer must then count
    the rewards itself (it skips that only when the recorder is the outermost layer)."""
    limit = {"_target_": "gymnasium.wrappers.TimeLimit", "max_episode_steps": 3}
    env = make_env("cardio/Counting-v0", num_envs=1, kwargs={"length": 10}, wrappers=[limit])
    gatherer = Gatherer(env, seed=0)
    for _ in range(12):
        gatherer.step(gatherer.random_policy)
    assert gatherer.stats.episodes == 4
    assert list(gatherer.stats.returns) == [3.0] * 4 and list(gatherer.stats.lengths) == [3] * 4


MODES = [
    ("sync", "same_step"),
    ("sync", "next_step"),
    ("async", "same_step"),
    ("async", "next_step"),
    ("vector_entry_point", "next_step"),
]


def _train(tmp_path: Any, agent: str, vectorization: str, autoreset: str) -> tuple[Any, dict[str, Any]]:
    from cardio.build import build_runner
    from tests.conftest import compose_train, shrink

    overrides = [f"agent={agent}", "env=CartPole", "env.num_envs=4", f"env.vectorization={vectorization}"]
    overrides += [f"env.autoreset={autoreset}", "zoo=none"]
    if agent == "dqn":
        overrides += ["runner.schedule.learning_starts=64", "runner.schedule.train_freq=4"]
    else:
        overrides += ["runner.schedule.n_steps=16", "agent.batch_size=32", "agent.n_epochs=2"]
    cfg = shrink(compose_train(overrides), tmp_path / f"{agent}_{vectorization}_{autoreset}", total_steps=512)
    runner = build_runner(cfg)
    try:
        final = runner.run()
        stored = {k: v.copy() for k, v in runner.buffer.storage.items() if isinstance(v, np.ndarray)}
        return stored, {"final": final, "env_steps": runner.env_steps, "episodes": runner.gatherer.stats.episodes}
    finally:
        runner.close()


@pytest.mark.parametrize("agent", ["dqn", "ppo"])
@pytest.mark.parametrize(("vectorization", "autoreset"), MODES)
def test_every_vectorization_trains_through_the_runner(tmp_path, agent: str, vectorization: str, autoreset: str):
    """Each env.vectorization x env.autoreset that make_env accepts trains off- and on-policy through the Runner
    (async died at its first reset: asking its copies for an attribute they lack shut the workers down), and
    async stores bit for bit what sync stores: the same copies, seeds and autoreset, run in other processes."""
    stored, out = _train(tmp_path, agent, vectorization, autoreset)
    # NEXT_STEP: a vector step of the last phase can hold fewer reset rows than expected, so the run may end past
    # the budget by less than one vector step (a rollout's full streams step on, dropping their rows)
    assert 512 <= out["env_steps"] < 512 + (4 if agent == "dqn" else 64)
    assert out["episodes"] > 0 and np.isfinite(out["final"]["eval/mean_reward"])
    if vectorization == "async":
        reference, ref_out = _train(tmp_path, agent, "sync", autoreset)
        assert sorted(stored) == sorted(reference)
        for key in stored:
            assert stored[key].tobytes() == reference[key].tobytes(), key
        assert out == ref_out

"""``Gatherer.collect``, the fast collection path the off-policy schedule uses, stores exactly what the plain
paths store: bit for bit the same transitions as a hand-written gymnasium loop (one env; the native x64 vector
env with its NEXT_STEP reset rows) and as ``buffer.add(*gatherer.step(policy))`` step by step, with the same
episode statistics and the same state left behind (so a later step or checkpoint cannot tell them apart)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

from cardio.buffers import CircularBuffer
from cardio.buffers.prioritized import PrioritizedBuffer
from cardio.envs import CountingEnv, make_env
from cardio.gatherer import Gatherer

FIELDS = ("obs", "action", "reward", "next_obs", "terminated", "truncated")
SHORT = {"max_episode_steps": 20}  # CartPole truncated at 20 steps: terminations and truncations both occur


def twitchy(obs: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    """A deterministic policy whose actions look random (a bit of the cart position): episodes end often."""
    return (np.abs(obs[:, 0] * 1e6).astype(np.int64) % 2).astype(np.int64), {}


def stored(buffer: CircularBuffer) -> dict[str, list[np.ndarray]]:
    """Each env stream's transitions in the order they were added."""
    out: dict[str, list[np.ndarray]] = {f: [] for f in FIELDS}
    for e in range(buffer.num_envs):
        rows = (np.arange(int(buffer.size[e])) + int(buffer.cursor[e]) - int(buffer.size[e])) % buffer.slots_per_env
        for f in FIELDS:
            out[f].append(buffer.storage[f][rows, e])  # type: ignore[index]
    return out


def assert_same_buffers(a: CircularBuffer, b: CircularBuffer) -> None:
    assert a.cursor.tolist() == b.cursor.tolist() and a.size.tolist() == b.size.tolist()
    for f in FIELDS:
        x, y = a.storage[f], b.storage[f]  # type: ignore[index]
        assert x.dtype == y.dtype and x.tobytes() == y.tobytes(), f"field {f} differs"


def assert_same_gatherers(a: Gatherer, b: Gatherer) -> None:
    assert a.stats.env_steps == b.stats.env_steps and a.stats.episodes == b.stats.episodes
    assert list(a.stats.returns) == list(b.stats.returns) and list(a.stats.lengths) == list(b.stats.lengths)
    assert a.ep_length.tolist() == b.ep_length.tolist() and a.ep_return.tolist() == b.ep_return.tolist()
    assert a.pending.tolist() == b.pending.tolist() and a.finished == b.finished
    assert np.asarray(a.obs).tobytes() == np.asarray(b.obs).tobytes()


def test_one_env_matches_a_hand_written_gymnasium_loop() -> None:
    """One CartPole env as make_env builds it, 300 steps, about 17 episode ends of both kinds."""
    g = Gatherer(make_env("CartPole-v1", num_envs=1, seed=0, kwargs=SHORT), seed=0)
    buffer = CircularBuffer(1000, num_envs=1)
    written, episodes = g.collect(buffer, 300, twitchy, block=64)

    env = gym.make("CartPole-v1", **SHORT)  # the reference: the plain loop, final obs kept, reset by hand
    ref: dict[str, list[Any]] = {f: [] for f in FIELDS}
    returns, ret = [], 0.0
    obs, _ = env.reset(seed=0)
    for _ in range(300):
        action = int(twitchy(obs[None])[0][0])
        next_obs, reward, terminated, truncated, _ = env.step(action)
        for f, v in zip(FIELDS, (obs, action, reward, next_obs, terminated, truncated), strict=True):
            ref[f].append(v)
        ret += float(reward)
        obs = next_obs
        if terminated or truncated:
            returns.append(ret)
            ret = 0.0
            obs, _ = env.reset()
    assert written == 300 and episodes == len(returns) >= 15
    assert 0 < sum(ref["truncated"]) < episodes  # both kinds of episode end occurred
    got = stored(buffer)
    dtypes = {"obs": np.float32, "action": np.int64, "reward": np.float32, "next_obs": np.float32}
    for f in FIELDS:
        want = np.asarray(ref[f], dtype=dtypes.get(f, bool))
        assert got[f][0].tobytes() == want.tobytes(), f"field {f} differs from the plain loop"
    assert list(g.stats.returns) == returns[-100:]


def test_native_x64_matches_a_hand_written_vector_loop() -> None:
    """gymnasium's CartPoleVectorEnv x64 under NEXT_STEP: the reference keeps every row except the one after an
    end (the reset row), per env stream in time order; terminal rows keep the true final observation."""
    kw: dict[str, Any] = {"kwargs": SHORT, "vectorization": "vector_entry_point", "autoreset": "next_step"}
    g = Gatherer(make_env("CartPole-v1", num_envs=64, seed=0, **kw), seed=0)
    buffer = CircularBuffer(64 * 200, num_envs=64)
    written, episodes = g.collect(buffer, 60, twitchy, block=16)

    env = gym.make_vec("CartPole-v1", num_envs=64, vectorization_mode="vector_entry_point", **SHORT)
    ref: list[dict[str, list[Any]]] = [{f: [] for f in FIELDS} for _ in range(64)]
    obs, _ = env.reset(seed=0)
    pending = np.zeros(64, dtype=bool)
    for _ in range(60):
        action = twitchy(obs)[0]
        next_obs, reward, terminated, truncated, _ = env.step(action)
        for e in np.flatnonzero(~pending):
            for f, v in zip(FIELDS, (obs, action, reward, next_obs, terminated, truncated), strict=True):
                ref[e][f].append(v[e])
        pending = (terminated | truncated) & ~pending
        obs = next_obs
    got = stored(buffer)
    assert written == sum(len(r["obs"]) for r in ref)
    assert episodes == sum(int(np.sum(np.logical_or(r["terminated"], r["truncated"]))) for r in ref) > 64
    for e in range(64):
        for f in FIELDS:
            want = np.asarray(ref[e][f], dtype=got[f][e].dtype)
            assert got[f][e].tobytes() == want.tobytes(), f"env {e} field {f} differs from the plain loop"


def _pair(make: Any, capacity: int, buffer_cls: type = CircularBuffer) -> tuple[Gatherer, Any, Gatherer, Any]:
    env_a, env_b = make(), make()
    n = env_a.num_envs
    return (
        Gatherer(env_a, seed=3),
        buffer_cls(capacity, n, seed=0),
        Gatherer(env_b, seed=3),
        buffer_cls(capacity, n, seed=0),
    )


def _step_by_step(g: Gatherer, buffer: Any, steps: int, policy: Any, random_until: int = 0) -> None:
    for _ in range(steps):
        p = g.random_policy if g.stats.env_steps < random_until else policy
        buffer.add(*g.step(p))


def counting_sync(mode: AutoresetMode, wrapped: bool = False, integral: bool = False) -> gym.vector.VectorEnv:
    # sums that are not exact in binary show the summation order; integer ones (of both signs) take collect's
    # one-cumulative-sum path
    rewards = [-1.0, 2.0, -3.0, 1.0, 4.0] if integral else [0.1, 0.7, 1.3, 2.9, 0.3]

    def one(k: int) -> gym.Env:
        env: gym.Env = CountingEnv(length=3 + k, rewards=rewards[: 3 + k], end="truncate" if k % 2 else "terminate")
        return gym.wrappers.TransformReward(env, lambda r: r) if wrapped else env

    env = gym.vector.SyncVectorEnv([lambda k=k: one(k) for k in range(3)], autoreset_mode=mode)
    env.action_space.seed(1)
    return env


CASES = {
    "one CartPole": lambda: make_env("CartPole-v1", num_envs=1, seed=1, kwargs=SHORT),
    "one CartPole, user wrapper": lambda: make_env(
        "CartPole-v1", num_envs=1, seed=1, kwargs=SHORT, wrappers=[lambda e: gym.wrappers.TimeLimit(e, 7)]
    ),
    "native x64": lambda: make_env(
        "CartPole-v1", 64, 1, SHORT, vectorization="vector_entry_point", autoreset="next_step"
    ),
    "sync x4 CartPole": lambda: make_env("CartPole-v1", num_envs=4, seed=1, kwargs=SHORT),
    "counting same_step": lambda: counting_sync(AutoresetMode.SAME_STEP),
    "counting next_step": lambda: counting_sync(AutoresetMode.NEXT_STEP, wrapped=True),
    "counting next_step, integer rewards": lambda: counting_sync(AutoresetMode.NEXT_STEP, integral=True),
    "counting disabled": lambda: counting_sync(AutoresetMode.DISABLED),
}


@pytest.mark.parametrize("case", list(CASES))
def test_collect_equals_step_and_add(case: str) -> None:
    """Random warm-up then a policy, odd block sizes, a small buffer that wraps: collect and step + add leave the
    same buffer, statistics, pending rows and observation, and the next step of each is the same too."""
    ga, ba, gb, bb = _pair(CASES[case], capacity=64 * 40)
    policy = twitchy if "counting" not in case else (lambda obs: (np.zeros(len(obs), dtype=np.int64), {}))
    fresh: list[list[bool]] = []
    ga.collect(ba, 53, policy, random_until=60, block=5, on_fresh=lambda rows: fresh.append(rows.tolist()))
    ga.collect(ba, 47, policy, random_until=60, block=256)
    _step_by_step(gb, bb, 100, policy, random_until=60)
    assert_same_buffers(ba, bb)
    assert_same_gatherers(ga, gb)
    assert ga.stats.episodes >= 3 and fresh
    ta, _ = ga.step(policy)
    tb, _ = gb.step(policy)
    for f in FIELDS:
        assert np.asarray(ta[f]).tobytes() == np.asarray(tb[f]).tobytes()


def test_collect_keeps_prioritized_replay_priorities() -> None:
    ga, ba, gb, bb = _pair(lambda: make_env("CartPole-v1", num_envs=2, seed=0), 64, PrioritizedBuffer)
    ba.max_priority = bb.max_priority = 5.0
    ga.collect(ba, 40, twitchy, block=16)
    _step_by_step(gb, bb, 40, twitchy)
    assert_same_buffers(ba, bb)
    assert np.array_equal(ba.tree.get(np.arange(64)), bb.tree.get(np.arange(64)))


def test_collect_calls_before_step_with_the_step_counter_current() -> None:
    """The runner advances epsilon and target syncs before every vector step, from the env steps so far."""
    g = Gatherer(make_env("CartPole-v1", num_envs=1, seed=0), seed=0)
    seen: list[int] = []
    g.collect(CircularBuffer(100), 10, twitchy, before_step=lambda: seen.append(g.stats.env_steps))
    assert seen == list(range(10))

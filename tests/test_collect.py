"""``Gatherer.collect``, the one collection path, stores exactly what the plain loops store: bit for bit the same
transitions as a hand-written gymnasium loop (one env; the native x64 vector env with its NEXT_STEP reset rows)
and as the step-by-step reference model (``tests/reference_gatherer.py``, the gatherer before the block path
became the only one) with ``buffer.add`` per step, with the same episode statistics and the same state left
behind (so a later step or checkpoint cannot tell them apart). Every stop condition (a rollout's rows, the
evaluation's episodes per env, episodes over all envs, the run's end), the per-step hooks and the multi-seed
lockstep are checked against the same reference loop."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

from cardio.buffers import CircularBuffer
from cardio.buffers.prioritized import PrioritizedBuffer
from cardio.envs import CountingEnv, NestedDictEnv, make_env
from cardio.envs.atari import EPISODE_CONTINUES_KEY
from cardio.gatherer import Gatherer, StepHooks, Until, collect_lockstep
from cardio.pytree import named_leaves
from tests.reference_gatherer import ReferenceGatherer

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
    assert sorted(a.storage) == sorted(b.storage)  # type: ignore[arg-type]
    for (name, x), y in zip(named_leaves(a.storage).items(), named_leaves(b.storage).values(), strict=True):
        assert x.dtype == y.dtype and x.tobytes() == y.tobytes(), f"field {name} differs"


def assert_same_gatherers(a: Gatherer, b: Any) -> None:
    assert a.stats.env_steps == b.stats.env_steps and a.stats.episodes == b.stats.episodes
    assert list(a.stats.returns) == list(b.stats.returns) and list(a.stats.lengths) == list(b.stats.lengths)
    assert a.ep_length.tolist() == b.ep_length.tolist() and a.ep_return.tolist() == b.ep_return.tolist()
    assert a.pending.tolist() == b.pending.tolist() and a.finished == b.finished
    for x, y in zip(named_leaves(a.obs).values(), named_leaves(b.obs).values(), strict=True):
        assert np.asarray(x).tobytes() == np.asarray(y).tobytes()


def test_one_env_matches_a_hand_written_gymnasium_loop() -> None:
    """One CartPole env as make_env builds it, 300 steps, about 17 episode ends of both kinds."""
    g = Gatherer(make_env("CartPole-v1", num_envs=1, seed=0, kwargs=SHORT), seed=0)
    buffer = CircularBuffer(1000, num_envs=1)
    tally = g.collect(buffer, 300, twitchy, block=64)
    written, episodes = tally.written, tally.episodes

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
    tally = g.collect(buffer, 60, twitchy, block=16)
    written, episodes = tally.written, tally.episodes

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


class Lives(gym.Wrapper):
    """A game of ``lives`` lives over a CountingEnv: every ``every``-th step loses a life (terminated, flagged
    ``EPISODE_CONTINUES_KEY``) and the reset that follows goes on with the same game, as ``EpisodicLife`` does."""

    continues_episodes = True

    def __init__(self, env: gym.Env, every: int = 2, lives: int = 3) -> None:
        super().__init__(env)
        self.every, self.lives, self.left, self.t, self.game_over = every, lives, lives, 0, True
        self.last: Any = None

    def step(self, action: Any) -> Any:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.t += 1
        self.game_over = bool(terminated or truncated)
        self.last = obs
        if not self.game_over and self.t % self.every == 0 and self.left > 1:
            self.left -= 1
            return obs, reward, True, False, {**info, EPISODE_CONTINUES_KEY: True}
        return obs, reward, terminated, truncated, info

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        if self.game_over or seed is not None:
            self.left, self.t, self.game_over = self.lives, 0, False
            obs, info = self.env.reset(seed=seed, options=options)
            self.last = obs
            return obs, info
        return self.last, {}


def counting_sync(
    mode: AutoresetMode, wrapped: bool = False, integral: bool = False, lives: bool = False
) -> gym.vector.VectorEnv:
    # sums that are not exact in binary show the summation order; integer ones (of both signs) take collect's
    # one-cumulative-sum path
    rewards = [-1.0, 2.0, -3.0, 1.0, 4.0, 2.0, 0.5, 1.5] if integral else [0.1, 0.7, 1.3, 2.9, 0.3, 0.2, 1.1, 0.6]

    def one(k: int) -> gym.Env:
        length = 5 + k if lives else 3 + k
        env: gym.Env = CountingEnv(length=length, rewards=rewards[:length], end="truncate" if k % 2 else "terminate")
        if lives:
            env = Lives(env, every=2 + k % 2)
        return gym.wrappers.TransformReward(env, lambda r: r) if wrapped else env

    env = gym.vector.SyncVectorEnv([lambda k=k: one(k) for k in range(3)], autoreset_mode=mode)
    env.action_space.seed(1)
    return env


def nested_sync(mode: AutoresetMode) -> gym.vector.VectorEnv:
    env = gym.vector.SyncVectorEnv([lambda: NestedDictEnv(length=4) for _ in range(2)], autoreset_mode=mode)
    env.action_space.seed(2)
    return env


def one_lives_env() -> gym.vector.VectorEnv:
    env = gym.vector.SyncVectorEnv([lambda: Lives(CountingEnv(length=7, rewards=0.3))])
    env.single_action_space.seed(4)  # one env draws its random actions from the single space
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
    "sync x4 CartPole next_step": lambda: make_env(
        "CartPole-v1", num_envs=4, seed=1, kwargs=SHORT, autoreset="next_step"
    ),
    "counting same_step": lambda: counting_sync(AutoresetMode.SAME_STEP),
    "counting next_step": lambda: counting_sync(AutoresetMode.NEXT_STEP, wrapped=True),
    "counting next_step, integer rewards": lambda: counting_sync(AutoresetMode.NEXT_STEP, integral=True),
    "counting disabled": lambda: counting_sync(AutoresetMode.DISABLED),
    "lives same_step": lambda: counting_sync(AutoresetMode.SAME_STEP, lives=True),
    "lives next_step": lambda: counting_sync(AutoresetMode.NEXT_STEP, lives=True),
    "lives next_step, integer rewards": lambda: counting_sync(AutoresetMode.NEXT_STEP, integral=True, lives=True),
    "one lives env": lambda: one_lives_env(),
    "nested same_step": lambda: nested_sync(AutoresetMode.SAME_STEP),
    "nested next_step": lambda: nested_sync(AutoresetMode.NEXT_STEP),
}


def _pair(make: Any, capacity: int, buffer_cls: type = CircularBuffer) -> tuple[Gatherer, Any, ReferenceGatherer, Any]:
    env_a, env_b = make(), make()
    n = env_a.num_envs
    return (
        Gatherer(env_a, seed=3),
        buffer_cls(capacity, n, seed=0),
        ReferenceGatherer(env_b, seed=3),
        buffer_cls(capacity, n, seed=0),
    )


def _zeros(n: int) -> Any:
    return lambda obs: (np.zeros(n, dtype=np.int64), {})


def _reference_steps(g: ReferenceGatherer, buffer: Any, steps: int, policy: Any, random_until: int = 0) -> None:
    for _ in range(steps):
        p = g.random_policy if g.stats.env_steps < random_until else policy
        buffer.add(*g.step(p))


@pytest.mark.parametrize("case", list(CASES))
def test_collect_equals_the_step_by_step_reference(case: str) -> None:
    """Random warm-up then a policy, odd block sizes, a small buffer that wraps: collect and the reference's
    step + add leave the same buffer, statistics, pending rows and observation, and the next step is the same."""
    ga, ba, gb, bb = _pair(CASES[case], capacity=64 * 40)
    policy = twitchy if "CartPole" in case or "native" in case else _zeros(ga.num_envs)
    heard_a: list[tuple[int, float, int]] = []
    heard_b: list[tuple[int, float, int]] = []
    ga.on_episode = lambda *e: heard_a.append(e)
    gb.on_episode = lambda *e: heard_b.append(e)
    ga.collect(ba, 53, policy, random_until=60, block=5)
    ga.collect(ba, 47, policy, random_until=60, block=256)
    _reference_steps(gb, bb, 100, policy, random_until=60)
    assert_same_buffers(ba, bb)
    assert_same_gatherers(ga, gb)
    assert heard_a == heard_b and ga.stats.episodes >= 3
    if "lives" in case:  # lives were lost: more learning episodes than games
        assert int(bb.storage["terminated"].sum()) > ga.stats.episodes  # type: ignore[index]
    ta, _ = ga.step(policy)
    tb, _ = gb.step(policy)
    for (name, x), y in zip(named_leaves(ta).items(), named_leaves(tb).values(), strict=True):
        assert np.asarray(x).tobytes() == np.asarray(y).tobytes(), name


@pytest.mark.parametrize("case", ["one CartPole", "sync x4 CartPole next_step", "lives next_step", "native x64"])
def test_hooks_see_every_step_as_the_reference_does(case: str) -> None:
    """``before_act`` gets each step's observation and valid rows, ``after_step`` its reward, done, valid and
    fresh rows (``done | ~valid`` when there are any), exactly as a step-by-step loop would compute them."""
    ga, ba, gb, bb = _pair(CASES[case], capacity=64 * 40)
    policy = twitchy if "CartPole" in case or "native" in case else _zeros(ga.num_envs)
    seen_a: list[Any] = []
    hooks = StepHooks(
        after_step=lambda r, d, v, f: seen_a.append(("after", np.float32(r).tolist(), d.tolist(), v.tolist(), f)),
    )
    ga.collect(
        ba, 40, policy, hooks=hooks, block=7, before_act=lambda o, v: seen_a.append(("act", o.tobytes(), v.tolist()))
    )
    seen_b: list[Any] = []
    for _ in range(40):
        valid = ~gb.pending
        seen_b.append(("act", np.asarray(gb.obs).tobytes() if gb.obs is not None else None, valid.tolist()))
        t, v = gb.step(policy)
        done = t["terminated"] | t["truncated"]
        fresh = done | ~v
        seen_b.append(("after", t["reward"].tolist(), done.tolist(), v.tolist(), fresh if fresh.any() else None))
        bb.add(t, v)
    seen_b[0] = (seen_b[0][0], seen_a[0][1], seen_b[0][2])  # the reference resets inside its first step
    assert len(seen_a) == len(seen_b)
    for x, y in zip(seen_a, seen_b, strict=True):
        assert x[:4] == y[:4]
        if x[0] == "after":
            assert (x[4] is None) == (y[4] is None) and (x[4] is None or x[4].tolist() == y[4].tolist())
    assert_same_buffers(ba, bb)


@pytest.mark.parametrize("case", ["sync x4 CartPole", "sync x4 CartPole next_step", "native x64", "one CartPole"])
def test_a_rollout_fills_every_stream_and_drops_the_extra_rows(case: str) -> None:
    """``Until(rows=T)``: as the on-policy loop ``while any(size < T): add(t, valid & (size < T))``."""
    ga, ba, gb, bb = _pair(CASES[case], capacity=64 * 20)
    tally = ga.collect(ba, until=Until(rows=13), block=4, policy=twitchy)
    while bool(np.any(bb.size < 13)):
        t, v = gb.step(twitchy)
        bb.add(t, v & (bb.size < 13))
    assert_same_buffers(ba, bb)
    assert_same_gatherers(ga, gb)
    assert tally.rows.tolist() == [13] * ga.num_envs  # type: ignore[union-attr]


@pytest.mark.parametrize("case", ["sync x4 CartPole", "native x64", "one CartPole", "lives next_step"])
def test_evaluation_episodes_per_env_stop_where_the_reference_stops(case: str) -> None:
    """``Until(episodes_per_env=quota)`` with ``record``: the episodes in booking order, and the env left exactly
    where a step-by-step loop that stops once every env has finished its quota leaves it."""
    ga, _, gb, _ = _pair(CASES[case], capacity=64)
    policy = twitchy if "CartPole" in case or "native" in case else _zeros(ga.num_envs)
    quota = np.array([2 + i % 2 for i in range(ga.num_envs)])
    tally = ga.collect(None, policy=policy, until=Until(episodes_per_env=quota), record=True)
    ended, finished = np.zeros(gb.num_envs, dtype=np.int64), []
    while bool(np.any(ended < quota)):
        gb.step(policy)
        for f in gb.finished:
            finished.append(f)
            ended[f[0]] += 1
    assert tally.finished == finished and len(finished) >= quota.sum()
    assert_same_gatherers(ga, gb)


@pytest.mark.parametrize("case", ["sync x4 CartPole", "lives same_step", "counting next_step"])
def test_learning_ends_and_the_run_end_stop_an_episode_phase(case: str) -> None:
    """``Until(learning_ends=K, env_steps=E)``: as ``while ends < K: if env_steps >= E: break; step`` (lives lost
    count as ends, as SB3 counts ``train_freq=(K, "episode")``)."""
    for limit in (10_000, 37):
        ga, ba, gb, bb = _pair(CASES[case], capacity=64 * 40)
        policy = twitchy if "CartPole" in case else _zeros(ga.num_envs)
        tally = ga.collect(ba, policy=policy, until=Until(learning_ends=5, env_steps=limit), block=3)
        ends = 0
        while ends < 5:
            if gb.stats.env_steps >= limit:
                break
            t, v = gb.step(policy)
            bb.add(t, v)
            ends += int(((t["terminated"] | t["truncated"]) & v).sum())
        assert_same_buffers(ba, bb)
        assert_same_gatherers(ga, gb)
        assert tally.learning_ends == ends


def test_lockstep_collection_equals_each_gatherer_alone() -> None:
    """Two seeds' gatherers stepped together from one batched policy call per step store what each stores alone
    with its row of the actions (random warm-up first, as the multi-seed runner does)."""
    make = [lambda s=s: make_env("CartPole-v1", num_envs=1, seed=s, kwargs=SHORT) for s in (0, 1)]
    together = [Gatherer(m(), seed=s) for s, m in enumerate(make)]
    alone = [Gatherer(m(), seed=s) for s, m in enumerate(make)]
    buffers = [CircularBuffer(500, 1, seed=0) for _ in range(4)]
    calls: list[int] = []

    def batched(obs: list[Any]) -> list[np.ndarray]:
        calls.append(len(obs))
        return [twitchy(o)[0] for o in obs]

    collect_lockstep(together, buffers[:2], 120, batched, random_until=30, before_step=lambda: None)
    for g, buffer in zip(alone, buffers[2:], strict=True):
        g.collect(buffer, 120, twitchy, random_until=30)
    for a, b in zip(buffers[:2], buffers[2:], strict=True):
        assert_same_buffers(a, b)
    for a, b in zip(together, alone, strict=True):
        assert_same_gatherers(a, b)
    assert calls == [2] * 90  # one batched call per policy step, none for the 30 random ones


def test_collect_keeps_prioritized_replay_priorities() -> None:
    ga, ba, gb, bb = _pair(lambda: make_env("CartPole-v1", num_envs=2, seed=0), 64, PrioritizedBuffer)
    ba.max_priority = bb.max_priority = 5.0
    ga.collect(ba, 40, twitchy, block=16)
    _reference_steps(gb, bb, 40, twitchy)
    assert_same_buffers(ba, bb)
    assert np.array_equal(ba.tree.get(np.arange(64)), bb.tree.get(np.arange(64)))


def test_collect_calls_before_step_with_the_step_counter_current() -> None:
    """The runner advances epsilon and target syncs before every vector step, from the env steps so far."""
    g = Gatherer(make_env("CartPole-v1", num_envs=1, seed=0), seed=0)
    seen: list[int] = []
    g.collect(CircularBuffer(100), 10, twitchy, before_step=lambda: seen.append(g.stats.env_steps))
    assert seen == list(range(10))


def test_the_reference_model_catches_a_wrong_length() -> None:
    """Negative control: a reference that counted a NEXT_STEP reset row into the episode's length would differ."""
    ga, ba, gb, bb = _pair(CASES["counting next_step"], capacity=64 * 40)
    ga.collect(ba, 30, _zeros(3))
    _reference_steps(gb, bb, 30, _zeros(3))
    assert list(ga.stats.lengths) == list(gb.stats.lengths)
    assert list(ga.stats.lengths) != [n + 1 for n in gb.stats.lengths]

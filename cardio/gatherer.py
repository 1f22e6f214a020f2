"""Gatherer: steps a vector env with a policy and emits transitions, one ``[N, ...]`` batch per vector step.

Legend
    N          number of envs in the vector env; row ``i`` of every array is env ``i``.
    done       ``terminated | truncated``: the episode ended on this step (either way).
    pending    ``[N]`` bool, NEXT_STEP autoreset only: env ``i`` ended an episode on the previous step, so this
               step is its reset. The env ignores the action and returns ``(reset_obs, 0, False, False)``;
               ``final_obs -> reset_obs`` is not a transition and is masked out (``valid[i] = False``).

Under SAME_STEP autoreset (cardio's default, see ``make_env``) a done step already returns the reset observation
and puts the true final observation in ``info["final_obs"]``; the gatherer writes that final observation into
``next_obs`` so truncated episodes bootstrap from the right state. Under DISABLED it resets finished envs itself.
Episode returns and lengths are the env's own: envs built by ``make_env`` report them through an innermost
``RecordEpisodeStatistics`` (info key ``ENV_EPISODE_KEY``), which sees the rewards before any user wrapper
rescales or clips them; for other envs the gatherer sums the rewards it receives. A done step whose info says
``EPISODE_CONTINUES_KEY`` (an Atari life lost under ``EpisodicLife``) ends a learning episode, not a game: it is
stored as terminated, but no episode is recorded and the return runs on to the game's end.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

from cardio.envs.atari import EPISODE_CONTINUES_KEY
from cardio.envs.factory import ENV_EPISODE_KEY
from cardio.envs.single import OneEnvVector
from cardio.pytree import Tree, tree_copy, tree_map

Policy = Callable[[Tree], tuple[Any, dict[str, Any]]]
"""``obs [N, ...] -> (action [N, ...], extras)``; extras (``log_prob``, ``value``...) are stored with the step."""


@dataclass
class EpisodeStats:
    """Finished-episode statistics over a rolling window, and the step counters behind ``time/*``."""

    window: int = 100
    """Episodes averaged in ``rollout/ep_rew_mean`` and ``rollout/ep_len_mean`` (SB3 uses 100)."""
    returns: deque[float] = field(default_factory=deque)
    """Undiscounted returns of the last ``window`` finished episodes."""
    lengths: deque[int] = field(default_factory=deque)
    """Lengths (env steps) of the last ``window`` finished episodes."""
    episodes: int = 0
    """Episodes finished since the gatherer was built."""
    env_steps: int = 0
    """Transitions emitted (masked reset steps excluded) since the gatherer was built."""

    def __post_init__(self) -> None:
        self.returns = deque(self.returns, maxlen=self.window)
        self.lengths = deque(self.lengths, maxlen=self.window)

    def record(self, episode_return: float, length: int) -> None:
        self.returns.append(float(episode_return))
        self.lengths.append(int(length))
        self.episodes += 1

    def metrics(self) -> dict[str, float]:
        """``rollout/*`` metrics; empty until an episode has finished."""
        if not self.returns:
            return {}
        return {
            "rollout/ep_rew_mean": float(np.mean(self.returns)),
            "rollout/ep_len_mean": float(np.mean(self.lengths)),
            "time/episodes": float(self.episodes),
        }


def env_episodes(info: dict[str, Any], mode: AutoresetMode) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """``(reported [N] bool, return [N], length [N])`` of the episodes the env's own recorder closed this step
    (``None`` when the env has no recorder). SAME_STEP moves the finished episode's info to ``final_info``."""
    if mode == AutoresetMode.SAME_STEP:
        info = info.get("final_info", {})
    episode = info.get(ENV_EPISODE_KEY)
    if episode is None:
        return None
    return info["_" + ENV_EPISODE_KEY], episode["r"], episode["l"]


def episode_continues(info: dict[str, Any], mode: AutoresetMode) -> np.ndarray | None:
    """``[N]`` bool: envs whose episode ended this step for learning only, the game going on (an Atari life lost
    under ``EpisodicLife``); ``None`` when no env says so."""
    if mode == AutoresetMode.SAME_STEP:
        info = info.get("final_info", {})
    flags = info.get(EPISODE_CONTINUES_KEY)
    if flags is None:
        return None
    return np.asarray(info["_" + EPISODE_CONTINUES_KEY], dtype=bool) & np.asarray(flags, dtype=bool)


def as_vector_env(env: gym.Env | gym.vector.VectorEnv) -> gym.vector.VectorEnv:
    """A plain ``gym.Env`` becomes a one-env SyncVectorEnv (SAME_STEP), so everything sees ``[N, ...]``."""
    if isinstance(env, gym.vector.VectorEnv):
        return env
    return OneEnvVector(lambda: env, autoreset_mode=AutoresetMode.SAME_STEP)


def reports_own_returns(env: gym.vector.VectorEnv) -> bool:
    """Whether every episode end of this env comes with the env's own return: a sync vector env whose copies'
    outermost layer is ``make_env``'s recorder (no user wrapper above it that could end an episode unseen by it).
    The gatherer then need not sum rewards. ``False`` when it cannot tell (async, native, user wrappers)."""
    if not isinstance(env, gym.vector.SyncVectorEnv):
        return False
    return all(
        isinstance(sub, gym.wrappers.RecordEpisodeStatistics) and getattr(sub, "_stats_key", None) == ENV_EPISODE_KEY
        for sub in env.envs
    )


class Gatherer:
    """Runs a policy in a (vector) env and emits ``(transition, valid)`` per vector step.

    Args:
        env: a gymnasium vector env (any autoreset mode) or a plain env (wrapped as one-env vector env).
        seed: passed to the first ``reset`` only, so the env's own RNG carries on from there.
        stats_window: episodes in the rolling ``rollout/*`` window.
    """

    def __init__(self, env: gym.Env | gym.vector.VectorEnv, seed: int | None = None, stats_window: int = 100):
        self.env = as_vector_env(env)
        self.num_envs = self.env.num_envs
        self.mode = self.env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
        self.stats = EpisodeStats(window=stats_window)
        self.seed = seed
        self.obs: Tree | None = None
        self.pending = np.zeros(self.num_envs, dtype=bool)
        self.ep_return = np.zeros(self.num_envs, dtype=np.float64)
        # Episode lengths are counted, not summed: ``ep_length = _steps - _ep_start`` (vector steps taken, and
        # each env's count when its episode started; under NEXT_STEP one more, as the reset row does not count),
        # so a step adds one Python int.
        self._steps = 0
        self._ep_start = np.zeros(self.num_envs, dtype=np.int64)
        self.finished: list[tuple[int, float, int]] = []  # (env, return, length) of episodes ended last step
        # called with (env, return, length) of every finished episode: the runner's per-episode callbacks
        self.on_episode: Callable[[int, float, int], None] | None = None
        self.started = time.perf_counter()
        # ``valid`` of a step without reset rows: one shared read-only array, not a fresh ~pending each step
        self._all_valid = np.ones(self.num_envs, dtype=bool)
        self._all_valid.flags.writeable = False
        self._no_done = np.zeros(self.num_envs, dtype=bool).tobytes()
        self._sum_rewards = not reports_own_returns(self.env)

    @property
    def ep_length(self) -> np.ndarray:
        """``[N]`` valid steps so far in each env's current episode (-1 while a NEXT_STEP reset row is due)."""
        return self._steps - self._ep_start

    @ep_length.setter
    def ep_length(self, value: np.ndarray) -> None:
        self._ep_start = self._steps - np.asarray(value, dtype=np.int64)

    @property
    def pending(self) -> np.ndarray:
        """``[N]`` bool: NEXT_STEP envs whose next step is a reset (see the module legend)."""
        return self._pending

    @pending.setter
    def pending(self, value: np.ndarray) -> None:
        self._pending = value
        self._n_pending = int(np.count_nonzero(value))
        self._any_pending = self._n_pending > 0  # most steps have none: the step skips the masking then

    def reset(self, seed: int | None = None) -> Tree:
        """Reset every env (seeded the first time with the gatherer's seed) and drop partial episodes."""
        if seed is None and self.obs is None:
            seed = self.seed
        self.obs, _ = self.env.reset(seed=seed)
        self.pending = np.zeros(self.num_envs, dtype=bool)
        self.ep_return[:] = 0.0
        self.ep_length = np.zeros(self.num_envs, dtype=np.int64)
        return self.obs

    def step(self, policy: Policy) -> tuple[dict[str, Any], np.ndarray]:
        """One vector step: ``(transition [N, ...], valid [N])``; rows with ``valid=False`` are not transitions.

        The common step (no episode ends, no reset rows) is a handful of numpy calls: everything about episode
        ends runs only when one happened (``bench/collection.py`` measures the whole path against the bare loop).
        """
        if self.obs is None:
            self.reset()
        obs = self.obs
        # 1. act
        action, extras = policy(obs)
        # 2. step the env
        next_obs, reward, terminated, truncated, info = self.env.step(action)
        terminated = np.asarray(terminated, dtype=bool)
        truncated = np.asarray(truncated, dtype=bool)
        # comparing bytes costs ~1/20 of a numpy call; most steps end no episode and skip all that follows
        any_done = terminated.tobytes() != self._no_done or truncated.tobytes() != self._no_done
        done = terminated | truncated if any_done else None
        # 3. drop autoreset rows: under NEXT_STEP this step is a reset for envs that ended last step
        valid = ~self._pending if self._any_pending else self._all_valid
        # 4. the true final observation. SAME_STEP: from info (next_obs is already the reset obs); truncation
        #    must bootstrap from it (tests/test_gatherer.py::test_truncation_keeps_final_obs).
        carry = next_obs
        if done is not None and self.mode == AutoresetMode.SAME_STEP:
            next_obs = tree_copy(next_obs)
            for i in np.flatnonzero(done):
                tree_map(lambda dst, src, i=i: dst.__setitem__(i, src), next_obs, info["final_obs"][i])
        elif done is not None and self.mode == AutoresetMode.DISABLED:
            next_obs = tree_copy(next_obs)
            carry, _ = self.env.reset(options={"reset_mask": done})
        reward = np.asarray(reward, dtype=np.float32)
        transition = {
            "obs": obs,
            "action": np.asarray(action),
            "reward": reward,
            "next_obs": next_obs,
            "terminated": terminated,
            "truncated": truncated,
            **extras,
        }
        # 5. episode statistics, counted on valid rows only (lengths from the step counter, see _ep_start);
        #    rewards are summed only for envs whose own recorder does not report returns
        self._steps += 1
        if self._any_pending:
            if self._sum_rewards:
                np.add(self.ep_return, reward, out=self.ep_return, where=valid)
            self.stats.env_steps += self.num_envs - self._n_pending
        else:
            if self._sum_rewards:
                self.ep_return += reward
            self.stats.env_steps += self.num_envs
        self.finished = [] if done is None else self._end_episodes(info, done, valid)
        # 6. carry the observation; NEXT_STEP envs that just ended owe a reset step next
        self.obs = carry
        if self.mode == AutoresetMode.NEXT_STEP and (done is not None or self._any_pending):
            self.pending = np.zeros(self.num_envs, dtype=bool) if done is None else done & valid
        return transition, valid

    def _end_episodes(self, info: dict[str, Any], done: np.ndarray, valid: np.ndarray) -> list[tuple[int, float, int]]:
        """Record the episodes that ended this step and restart their sums; returns ``(env, return, length)``.

        The env's own return is used where its recorder reports one
        (tests/test_evaluation.py::test_eval_returns_are_the_envs_own)."""
        own = env_episodes(info, self.mode)
        if own is not None:
            reported, own_return, own_length = own
            self.ep_return = np.where(reported, own_return, self.ep_return)
            self.ep_length = np.where(reported, own_length, self.ep_length)
        continues = episode_continues(info, self.mode)
        if continues is not None:  # a life lost, not the game: the episode's return and length run on
            if self.mode == AutoresetMode.NEXT_STEP:
                self._ep_start[continues] += 1  # the reset row to come is not a step of the game
            done = done & ~continues
        ended = (done & valid).nonzero()[0].tolist()
        lengths = (self._steps - self._ep_start[ended]).tolist()
        finished = list(zip(ended, self.ep_return[ended].tolist(), lengths, strict=True))
        for env_index, episode_return, length in finished:
            self.stats.record(episode_return, length)
            if self.on_episode is not None:
                self.on_episode(env_index, episode_return, length)
        self.ep_return[done] = 0.0
        self._ep_start[done] = self._steps + (self.mode == AutoresetMode.NEXT_STEP)  # skip the reset row
        return finished

    def random_policy(self, obs: Tree) -> tuple[Any, dict[str, Any]]:
        """Uniform actions from the env's (seeded) action space: warm-up is just a rollout with this."""
        return self.env.action_space.sample(), {}

    def fps(self) -> float:
        """Emitted transitions per wall-clock second since construction."""
        return self.stats.env_steps / max(time.perf_counter() - self.started, 1e-9)

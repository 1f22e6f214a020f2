"""The step-by-step reference model of collection: one vector step per call, every rule written out plainly.

This is the gatherer cardio had before its block path became the only one (commit 95d7d32, ``Gatherer.step``
and ``_end_episodes``), kept as the oracle the one collection path (``cardio.gatherer.Gatherer.collect``) is
checked against bit for bit in ``tests/test_collect.py``: the same transitions, reset rows, true final
observations, episode returns (float32 rewards summed one by one into float64), lengths, lives lost under
``EpisodicLife`` and the state left behind. It is deliberately slow and simple; do not optimise it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

from cardio.episodes import EpisodeStats, env_episodes, episode_continues, reports_own_returns
from cardio.gatherer import as_vector_env
from cardio.pytree import Tree, tree_copy, tree_map


class ReferenceGatherer:
    """``step(policy) -> (transition [N, ...], valid [N])``, one vector step at a time."""

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

    def reset(self, seed: int | None = None) -> Tree:
        """Reset every env (seeded the first time with the gatherer's seed) and drop partial episodes."""
        if seed is None and self.obs is None:
            seed = self.seed
        self.obs, _ = self.env.reset(seed=seed)
        self.pending = np.zeros(self.num_envs, dtype=bool)
        self.ep_return[:] = 0.0
        self.ep_length = np.zeros(self.num_envs, dtype=np.int64)
        return self.obs

    def step(self, policy: Callable[[Tree], tuple[Any, dict[str, Any]]]) -> tuple[dict[str, Any], np.ndarray]:
        """One vector step: ``(transition [N, ...], valid [N])``; rows with ``valid=False`` are not transitions."""
        if self.obs is None:
            self.reset()
        obs = self.obs
        action, extras = policy(obs)
        next_obs, reward, terminated, truncated, info = self.env.step(action)
        terminated = np.asarray(terminated, dtype=bool)
        truncated = np.asarray(truncated, dtype=bool)
        done = terminated | truncated
        valid = ~self.pending  # NEXT_STEP: this step is the reset of envs that ended last step
        carry = next_obs
        if done.any() and self.mode == AutoresetMode.SAME_STEP:  # the true final observation, from info
            next_obs = tree_copy(next_obs)
            for i in np.flatnonzero(done):
                tree_map(lambda dst, src, i=i: dst.__setitem__(i, src), next_obs, info["final_obs"][i])
        elif done.any() and self.mode == AutoresetMode.DISABLED:
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
        self._steps += 1
        if self._sum_rewards:
            np.add(self.ep_return, reward, out=self.ep_return, where=valid)
        self.stats.env_steps += int(valid.sum())
        self.finished = self._end_episodes(info, done, valid) if done.any() else []
        self.obs = carry
        if self.mode == AutoresetMode.NEXT_STEP:
            self.pending = done & valid
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
        """Uniform actions from the env's (seeded) action space; one env with an array action draws from the
        single space."""
        nested = isinstance(self.env.single_action_space, (gym.spaces.Dict, gym.spaces.Tuple))
        if self.num_envs == 1 and not nested:
            return np.array((self.env.single_action_space.sample(),)), {}
        return self.env.action_space.sample(), {}

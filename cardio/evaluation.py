"""Evaluation: the deterministic policy's returns on a separate env, through the one collection path.

The eval env is seeded with ``seed + EVAL_SEED_OFFSET`` (never the training episodes) and reset at the start of
every evaluation; each of its N copies plays its share of the episodes (``episodes // N``, the first
``episodes % N`` copies one more), so short episodes are not favoured, and an episode a copy finishes beyond its
share is not counted. Returns are the env's own (``cardio/episodes.py``): reward wrappers do not change them.
Metrics: ``eval/mean_reward``, ``eval/std_reward``, ``eval/iqm_reward``, ``eval/mean_ep_length``.
"""

from __future__ import annotations

from collections.abc import Sequence

import gymnasium as gym
import numpy as np

from cardio.acting import Actor
from cardio.errors import ScheduleError
from cardio.gatherer import Gatherer, Until

EVAL_SEED_OFFSET = 1_000_003
"""The eval env is seeded with ``seed + EVAL_SEED_OFFSET``, so it never replays the training episodes."""


def iqm(values: Sequence[float]) -> float:
    """Interquartile mean: the mean of the middle 50 % (Agarwal et al. 2021), robust to outlier episodes."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    cut = len(x) // 4
    return float(x[cut : len(x) - cut].mean()) if len(x) else float("nan")


def episode_quota(episodes: int, num_envs: int) -> np.ndarray:
    """``[N]`` episodes each eval env copy plays: ``episodes`` shared out, the first copies one more."""
    return np.array([episodes // num_envs + (i < episodes % num_envs) for i in range(num_envs)])


class Evaluator:
    """Runs an :class:`~cardio.acting.Actor`'s deterministic policy on the eval env.

    Args:
        env: the eval env (a vector env, or a plain env treated as one env).
        seed: the training seed (the eval env's first reset gets ``seed + EVAL_SEED_OFFSET``); ``None``: random.
    """

    def __init__(self, env: gym.Env | gym.vector.VectorEnv, seed: int | None) -> None:
        self.gatherer = Gatherer(env, seed=None if seed is None else seed + EVAL_SEED_OFFSET)

    @property
    def num_envs(self) -> int:
        return self.gatherer.num_envs

    def evaluate(self, actor: Actor, episodes: int) -> tuple[dict[str, float], tuple[list[float], list[int]]]:
        """``(metrics, (returns, lengths))`` of ``episodes`` episodes (see the module docstring).

        Raises:
            ScheduleError: ``episodes`` is not a positive integer.
        """
        if int(episodes) != episodes or episodes < 1:  # 0 was read as "the default"; below 0 gave NaN metrics
            raise ScheduleError(f"evaluate(episodes={episodes!r}): the number of episodes must be a positive integer")
        g = self.gatherer
        g.reset()
        if actor.eval_state is not None:
            actor.eval_state = actor.agent.initial_state(g.num_envs)
        quota = episode_quota(int(episodes), g.num_envs)
        tally = g.collect(
            None,
            policy=actor.policy(explore=False, evaluation=True),
            until=Until(episodes_per_env=quota),
            hooks=actor.hooks(evaluation=True),
            record=True,
        )
        taken = np.zeros(g.num_envs, dtype=np.int64)
        returns: list[float] = []
        lengths: list[int] = []
        for env, episode_return, length in tally.finished or ():
            if taken[env] < quota[env]:  # a copy's episodes beyond its share do not count
                returns.append(episode_return)
                lengths.append(length)
            taken[env] += 1
        metrics = {
            "eval/mean_reward": float(np.mean(returns)),
            "eval/std_reward": float(np.std(returns)),
            "eval/iqm_reward": iqm(returns),
            "eval/mean_ep_length": float(np.mean(lengths)),
        }
        return metrics, (returns, lengths)

    def close(self) -> None:
        self.gatherer.env.close()

"""Episodes: who ended one, with what return and length, booked for a whole block of vector steps at once.

Legend: N envs, k vector steps in a block; ``done = terminated | truncated`` ``[k, N]``; ``valid [k, N]`` the
rows that are transitions (NEXT_STEP reset rows are not); an env's episode *starts* at its step counter
``ep_start[e]`` and has lasted ``steps - ep_start[e]`` vector steps.

Returns and lengths are the env's own where its innermost ``RecordEpisodeStatistics`` reports them (info key
``ENV_EPISODE_KEY``: the rewards before any user wrapper rescaled them); otherwise the rewards of the valid rows
summed in float64, and the valid rows counted. A done step that the env marks ``EPISODE_CONTINUES_KEY`` (an Atari
life lost under ``EpisodicLife``) ends a *learning* episode (stored as terminated) but not a game: it is not
booked, its return runs on, and under NEXT_STEP the reset row that follows it is not a step of the game.

:func:`book_block` books ``k`` steps exactly as ``k`` one-step calls would, in step order and then env order (the
order ``rollout/ep_rew_mean``, the ``on_episode`` hooks and the evaluation returns see);
``tests/test_gatherer_reference.py`` checks it against a step-by-step reference model.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

from cardio.envs.atari import EPISODE_CONTINUES_KEY
from cardio.envs.factory import ENV_EPISODE_KEY

OwnReport = tuple[int, np.ndarray, np.ndarray, np.ndarray]
"""``(step in block, reported [N], return [N], length [N])``: what the env's recorder said at one step."""


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

    def record_many(self, episode_returns: list[float], lengths: list[int]) -> None:
        """:meth:`record` for several episodes in order (Python floats and ints already)."""
        self.returns.extend(episode_returns)
        self.lengths.extend(lengths)
        self.episodes += len(lengths)

    def metrics(self) -> dict[str, float]:
        """``rollout/*`` metrics; empty until an episode has finished."""
        if not self.returns:
            return {}
        return {
            "rollout/ep_rew_mean": float(np.mean(self.returns)),
            "rollout/ep_len_mean": float(np.mean(self.lengths)),
            "time/episodes": float(self.episodes),
        }


# ------------------------------------------------------------------------------------------------ what envs report
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


def episodes_may_continue(env: gym.vector.VectorEnv) -> bool:
    """Whether some env copy has a wrapper that ends episodes for learning only (``continues_episodes``, e.g.
    :class:`cardio.envs.atari.EpisodicLife`); ``False`` where the copies cannot be asked (native vector envs).

    The copies are asked through ``has_wrapper_attr``, which every gymnasium env answers: asking an
    ``AsyncVectorEnv``'s copies for an attribute they lack (``get_attr``) raises in the workers, and gymnasium
    then shuts them down (``tests/test_vector_envs.py::test_async_envs_train``)."""
    call = getattr(env, "call", None)
    if call is None:  # native vector envs: no copies
        return False
    try:
        if not any(call("has_wrapper_attr", "continues_episodes")):
            return False
        return any(call("get_wrapper_attr", "continues_episodes"))
    except Exception:  # a vector env whose copies take no calls
        return False


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


# ------------------------------------------------------------------------------------------------ booking a block
class Booked(Protocol):
    """The running episode state :func:`book_block` reads and moves on (a :class:`~cardio.gatherer.Gatherer`)."""

    mode: AutoresetMode
    stats: EpisodeStats
    ep_return: np.ndarray  # [N] float64 running return of each env's current episode
    _ep_start: np.ndarray  # [N] int64 vector-step count at which each env's current episode started
    _steps: int  # vector steps taken before the block
    on_episode: Any  # (env, return, length) -> None, or None


def book_block(
    g: Booked,
    done: np.ndarray,
    valid: np.ndarray,
    reward: np.ndarray | None,
    own: list[OwnReport],
    continued: np.ndarray | None = None,
) -> list[tuple[int, float, int]]:
    """Book a block of ``k`` steps just taken (``done``, ``valid`` ``[k, N]``) exactly as ``k`` one-step calls
    would: each episode that ended (return, length, ``on_episode``) in step order, then env order; each env's
    episode start moved past its last end; the running sums carried on. ``g._steps`` is still the count before
    the block (the caller adds ``k``). Returns the block's last step's episodes.

    Args:
        g: the running episode state (a gatherer).
        done: ``terminated | truncated`` of each step.
        valid: the rows that are transitions.
        reward: ``[k, N]`` float32 rewards to sum (``None``: the env reports every return itself).
        own: the env's recorder reports, for the steps that had some.
        continued: ``[k, N]`` done rows that end a learning episode only (lives lost), or ``None``.
    """
    next_step = g.mode == AutoresetMode.NEXT_STEP
    skipped = None  # [k, N] reset rows after lives lost, counted up to each step (NEXT_STEP only)
    if continued is not None:
        done = done & ~continued
        if next_step:
            skipped = np.cumsum(continued, axis=0)
    k = len(done)
    cols, steps = done.T.nonzero()  # every end, env by env and in time order within an env
    first = np.ones(len(cols), dtype=bool)  # the env's first end in the block
    first[1:] = cols[1:] != cols[:-1]
    last = np.ones(len(cols), dtype=bool)  # the env's last end in the block
    last[:-1] = first[1:]
    ep_returns = np.zeros(len(cols))
    if reward is not None:
        ep_returns = sum_rewards_block(g, reward, valid, done, cols, steps, first, last)
    if not len(cols):
        if skipped is not None:
            g._ep_start += skipped[-1]
        return []
    # lengths: an episode started at the previous end of the same env (plus NEXT_STEP's reset row)
    ends_at = g._steps + steps + 1  # the step counter after the step that ended it
    offset = int(next_step)
    lengths = ends_at - np.where(first, g._ep_start[cols], np.roll(ends_at, 1) + offset)
    if skipped is not None:  # the reset rows after lives lost within the episode are no steps of the game
        before = np.where(first, 0, skipped[np.roll(steps, 1), cols])
        lengths = lengths - (skipped[steps, cols] - before)
    if own:  # the env's own return and length where its recorder reports them
        reported = np.zeros(done.shape, dtype=bool)
        own_return, own_length = np.zeros(done.shape), np.zeros(done.shape, dtype=np.int64)
        for step, rep, ret, length in own:
            reported[step], own_return[step], own_length[step] = rep, ret, length
        mine = reported[steps, cols]
        ep_returns = np.where(mine, own_return[steps, cols], ep_returns)
        lengths = np.where(mine, own_length[steps, cols], lengths)
    new_start = ends_at[last] + offset  # an env that ended starts after its last end...
    if skipped is not None:  # ...pushed on by the lives it lost after it; the others by every life lost
        g._ep_start += skipped[-1]
        new_start = new_start + skipped[-1, cols[last]] - skipped[steps[last], cols[last]]
    g._ep_start[cols[last]] = new_start
    # book the ends (valid rows only) in step order, then env order, as step-by-step calls would
    order = np.lexsort((cols, steps))
    order = order[valid[steps[order], cols[order]]]
    ended, ended_returns, ended_lengths = cols[order].tolist(), ep_returns[order].tolist(), lengths[order].tolist()
    g.stats.record_many(ended_returns, ended_lengths)
    finished = list(zip(ended, ended_returns, ended_lengths, strict=True))
    if g.on_episode is not None:
        for env_index, episode_return, length in finished:
            g.on_episode(env_index, episode_return, length)
    return [f for f, s in zip(finished, steps[order].tolist(), strict=True) if s == k - 1]


def sum_rewards_block(
    g: Booked,
    reward: np.ndarray,
    valid: np.ndarray,
    done: np.ndarray,
    cols: np.ndarray,
    steps: np.ndarray,
    first: np.ndarray,
    last: np.ndarray,
) -> np.ndarray:
    """The return of each end ``(steps, cols)`` of a block, and ``g.ep_return`` carried on: the very numbers a
    step-by-step loop reaches adding float32 rewards one by one into float64 sums. Integer rewards (CartPole's 1s)
    are summed in any order exactly, so one cumulative sum serves; anything else is added step by step."""
    carry = g.ep_return
    rewards = np.where(valid, reward, np.float64(0.0))  # [k, N] float64 (a Python 0.0 would keep float32)
    integral = bool(np.all(rewards == np.rint(rewards)) and np.all(carry == np.rint(carry)))
    if integral and float(np.abs(rewards).sum() + np.abs(carry).max()) < 2.0**53:
        total = np.cumsum(rewards, axis=0)  # [k, N]
        ends = total[steps, cols]
        before = np.where(first, -carry[cols], total[np.roll(steps, 1), cols])  # the previous end's total
        g.ep_return = carry + total[-1]
        g.ep_return[cols[last]] = total[-1, cols[last]] - ends[last]
        return ends - before
    sums = np.empty(rewards.shape)
    acc = carry.copy()
    for t in range(len(rewards)):
        np.add(acc, reward[t], out=acc, where=valid[t])
        sums[t] = acc
        acc[done[t]] = 0.0
    g.ep_return = acc
    return sums[steps, cols]

"""Episodes for a dataset: rolled out by an agent, or cut out of a replay buffer.

Both return episodes in :func:`cardio.datasets.minari.write_dataset`'s layout: ``obs [L+1, ...]`` (the last one
the true final observation), ``action [L, ...]``, ``reward``, ``terminated``, ``truncated`` ``[L]``.

Rollouts (:func:`record_episodes`) run the agent through cardio's :class:`~cardio.gatherer.Gatherer` on a
one-env vector env, so the final observation of a truncated episode is the env's true one. The exploration
level is an epsilon: with probability ``epsilon`` an action is uniform from the action space, otherwise the
agent's own (``explore=False``: its deterministic policy; ``explore=True``: its training-time exploration, e.g.
SAC's sampled actions). Same seed, same agent, same machine: the same episodes.
"""

from __future__ import annotations

import copy
from typing import Any

import gymnasium as gym
import numpy as np

from cardio.agents.base import Agent
from cardio.buffers.circular import CircularBuffer
from cardio.gatherer import Gatherer
from cardio.pytree import Tree, tree_index, tree_map, tree_stack


def _episode(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """Consecutive one-env transitions (leaves without the env dim) -> one episode."""
    stacked = tree_stack(steps)
    return {
        "obs": tree_map(lambda o, last: np.concatenate([o, last[None]]), stacked["obs"], steps[-1]["next_obs"]),
        "action": stacked["action"],
        "reward": stacked["reward"],
        "terminated": stacked["terminated"],
        "truncated": stacked["truncated"],
    }


def record_episodes(
    agent: Agent | None,
    env: gym.vector.VectorEnv,
    episodes: int,
    *,
    epsilon: float = 0.0,
    explore: bool = False,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Roll the agent out for ``episodes`` whole episodes on a one-env vector env.

    Args:
        agent: acts on ``[1, ...]`` observations (stateful agents with ``initial_state`` are not supported);
            ``None`` with ``epsilon=1``: a uniform-random dataset.
        env: a vector env of one env (``cardio.build.build_env`` with ``num_envs=1``).
        episodes: whole episodes to record.
        epsilon: probability of replacing each action by a uniform one (0: the agent alone; 1: uniform).
        explore: the agent's own training-time exploration (``act(explore=True)``) instead of its greedy policy.
        seed: seeds the env's first reset and the epsilon draws and uniform actions.

    Raises:
        ValueError: ``epsilon`` outside ``[0, 1]``, ``episodes < 1``, an env of more than one copy, or no agent
            with ``epsilon < 1``.
    """
    if agent is None and epsilon < 1.0:
        raise ValueError(f"record_episodes without an agent needs epsilon=1 (uniform actions), got epsilon={epsilon}")
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon must lie in [0, 1], got epsilon={epsilon}")
    if episodes < 1:
        raise ValueError(f"episodes must be at least 1, got episodes={episodes}")
    if env.num_envs != 1:
        raise ValueError(f"record_episodes needs a one-env vector env, got num_envs={env.num_envs}")
    rng = np.random.default_rng(seed)
    space = copy.deepcopy(env.single_action_space)
    space.seed(seed)

    def policy(obs: Tree) -> tuple[np.ndarray, dict[str, Any]]:
        if rng.random() < epsilon:  # one draw per step, before the agent acts (it is not asked when unused)
            return np.asarray(space.sample())[None], {}
        assert agent is not None
        action, _ = agent.act(obs, explore=explore)
        return np.asarray(action), {}

    gatherer = Gatherer(env, seed=seed)
    out: list[dict[str, Any]] = []
    steps: list[dict[str, Any]] = []
    while len(out) < episodes:
        transition, valid = gatherer.step(policy)
        if not valid[0]:  # NEXT_STEP reset row: not a transition
            continue
        steps.append(tree_index(transition, 0))
        if transition["terminated"][0] or transition["truncated"][0]:
            out.append(_episode(steps))
            steps = []
    return out


def buffer_episodes(buffer: CircularBuffer) -> list[dict[str, Any]]:
    """Every stored transition of a replay buffer, cut into episodes, oldest first in each stream.

    A stream is read from its oldest row; an episode ends at ``terminated | truncated``, or where ``next_obs`` of
    a row is not the ``obs`` of the next (a stream's newest, unfinished episode; an episode whose start was
    overwritten is kept from its oldest stored step). Unfinished pieces end with neither flag, as Minari allows.

    Raises:
        ValueError: an empty buffer, or an n-step buffer with ``memory_saving`` (its one-step fields are not
            recoverable through ``get``).
    """
    if buffer.storage is None or len(buffer) == 0:
        raise ValueError("buffer_episodes() on an empty buffer: nothing to write")
    if buffer.n_step > 1 and buffer.memory_saving:
        raise ValueError("buffer_episodes() cannot read an n-step buffer with memory_saving=true")
    n, rows = buffer.num_envs, buffer.slots_per_env
    out: list[dict[str, Any]] = []
    for s in range(n):
        size, cursor = int(buffer.size[s]), int(buffer.cursor[s])
        order = (np.arange(size) + (cursor if size == rows else 0)) % rows
        flat = order * n + s
        if buffer.n_step == 1:
            data = buffer.get(flat)  # rebuilds next_obs under memory_saving
        else:  # get() would return n-step sums: read the one-step fields from storage
            data = tree_map(lambda x, order=order, s=s: x[order, s], buffer.storage)
        fields = {k: data[k] for k in ("obs", "action", "reward", "next_obs", "terminated", "truncated")}
        done = fields["terminated"] | fields["truncated"]
        start = 0
        for t in range(size):
            last = t == size - 1
            broken = not last and not _same(tree_index(fields["next_obs"], t), tree_index(fields["obs"], t + 1))
            if done[t] or broken or last:
                steps = [tree_index(fields, i) for i in range(start, t + 1)]
                out.append(_episode(steps))
                start = t + 1
    return out


def _same(a: Tree, b: Tree) -> bool:
    from cardio.pytree import tree_leaves

    return all(np.array_equal(x, y) for x, y in zip(tree_leaves(a), tree_leaves(b), strict=True))

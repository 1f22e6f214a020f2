"""The stepping loops under :meth:`cardio.gatherer.Gatherer.collect`: one vector step at a time, staged in blocks.

Legend: N envs, k steps in a block; ``done = terminated | truncated``; ``pending [N]`` (NEXT_STEP only): env
``i`` ended an episode last step, so this step is its reset row, which the env answers with
``(reset_obs, 0, False, False)`` and which is not a transition (``valid[i] = False``).

Each loop is a generator, so that the caller keeps the policy: it yields ``(obs, valid)`` before every step and is
sent the step's ``(action, extras)``, or ``None`` for a uniform-random action drawn here from the env's seeded
action space. One driver feeds one gatherer; the multi-seed driver feeds S gatherers in lockstep from one batched
policy call (``cardio.gatherer.collect_lockstep``). ``close()`` writes the last block and leaves the gatherer as
the steps left it.

Per step the loop does little: 1. take the action; 2. step the env; 3. mark NEXT_STEP reset rows; 4. put the
true final observation in ``next_obs`` (SAME_STEP: from ``info["final_obs"]``; DISABLED: reset by hand), so
truncated episodes bootstrap from it (``tests/test_gatherer.py::test_truncation_keeps_final_obs_and_is_not_
termination``); 5. note the env's own episode reports; 6. carry the observation. Every field stays a Python
list until the block (``block`` steps, and the end) is written to the sink in one ``add_block`` and its
episodes are booked (``cardio/episodes.py``). Only when something reads the per-step state between steps
(``track``: the step counter for schedules, the reset rows for the normaliser or a recurrent state, a stop
condition) is it kept current every step.

:func:`one_env_steps` is the same loop for one env under SAME_STEP (``make_env(num_envs=1)``): it steps the env
copy itself, without the vector layer, and keeps the episode's return and length as Python scalars.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from gymnasium.vector import AutoresetMode

from cardio.envs.factory import ENV_EPISODE_KEY
from cardio.envs.single import OneEnvVector
from cardio.episodes import Booked, OwnReport, book_block, env_episodes, episode_continues
from cardio.pytree import Tree, tree_copy, tree_map

Steps = Generator[tuple[Any, np.ndarray | None], tuple[Any, dict[str, Any]] | None, None]
"""A stepping loop: yields ``(obs [N, ...], valid [N] or None)``, is sent ``(action, extras)`` or ``None``."""


class Stepped(Booked, Protocol):
    """The gatherer state a stepping loop reads and leaves moved on (a :class:`~cardio.gatherer.Gatherer`)."""

    env: Any  # the vector env
    num_envs: int
    obs: Tree | None  # the observation the next step acts on
    pending: np.ndarray  # [N] NEXT_STEP reset rows due
    _pending: np.ndarray
    _n_pending: int
    finished: list[tuple[int, float, int]]  # episodes the last step ended
    _all_valid: np.ndarray  # [N] read-only all-True
    _no_done: bytes  # the bytes of an all-False [N] flag array
    _sum_rewards: bool  # the env does not report every return itself
    _episodes_may_continue: bool  # some copy may end an episode for learning only
    _single_space: bool  # random actions come from the single action space

    def random_policy(self, obs: Tree) -> tuple[Any, dict[str, Any]]: ...


@dataclass
class StepHooks:
    """Per-step state a collection keeps current (``cardio/acting.py`` builds them from the runner's actor)."""

    after_step: Callable[[Any, np.ndarray, np.ndarray, np.ndarray | None], None] | None = None
    """``(reward [N], done [N], valid [N], fresh [N] or None)`` after each env step: the normaliser's running
    returns, and the envs that start a new episode (``fresh = done | ~valid``, ``None`` when there are none)."""
    store: Callable[[Any, Any, np.ndarray], tuple[Any, Any, np.ndarray]] | None = None
    """``(obs, next_obs, reward) -> the same as stored`` (an on-policy rollout stores what the agent saw)."""


@dataclass
class Tally:
    """What a collection did, kept by its stepping loop; the per-env counts only where a stop condition reads
    them (``None`` otherwise)."""

    written: int = 0
    """Rows written to the sink (reset rows and rows past ``cap`` excluded)."""
    episodes: int = 0
    """Episodes ended (lives lost under ``EpisodicLife`` excluded)."""
    learning_ends: int = 0
    """Rows with ``done`` (lives lost included: SB3's episode count for ``train_freq_unit=episode``)."""
    rows: np.ndarray | None = None
    """``[N]`` rows written per stream (with ``cap``)."""
    ended: np.ndarray | None = None
    """``[N]`` episodes ended per env."""
    finished: list[tuple[int, float, int]] | None = None
    """Every ``(env, return, length)`` booked, in booking order, where asked for (evaluation)."""
    track: bool = False
    """Whether the loop keeps the step counter, reset rows and counts current every step."""
    cap: int | None = None
    """Rows per stream beyond which rows are dropped, not written (an on-policy rollout's length)."""
    count_ends: bool = False
    """Count ``episodes``, ``learning_ends`` and ``ended`` step by step (a stop condition reads them; else per
    block)."""


def vector_steps(g: Stepped, write: Callable[..., None] | None, tally: Tally, hooks: StepHooks, block: int) -> Steps:
    """The stepping loop for any vector env (see the module docstring).

    Args:
        g: the gatherer whose env is stepped and whose episode state moves on.
        write: ``add_block(block [k, N, ...], valid [k, N] or None)`` of the sink (``None``: nothing is stored).
        tally: counters to keep (its ``track`` and ``cap`` set how).
        hooks: per-step state to keep current (``track`` only).
        block: steps staged between writes.
    """
    env_step, stats, n, mode = g.env.step, g.stats, g.num_envs, g.mode
    same_step, disabled = mode == AutoresetMode.SAME_STEP, mode == AutoresetMode.DISABLED
    next_step = mode == AutoresetMode.NEXT_STEP
    no_done, all_valid, sum_rewards = g._no_done, g._all_valid, g._sum_rewards
    obs, pending, n_pending = g.obs, g._pending, g._n_pending
    track, cap, may_continue = tally.track, tally.cap, g._episodes_may_continue
    count_ends = track and tally.count_ends
    after, store = (hooks.after_step, hooks.store) if track else (None, None)
    look = track or same_step or disabled or may_continue  # whether a step must know that an episode ended
    plain = isinstance(obs, np.ndarray)
    stack = _stack if plain else _stack_tree
    no_rows = np.zeros(n, dtype=bool)
    rows, ended = tally.rows, tally.ended
    random_policy = g.random_policy
    if not g._single_space:  # the batched space's sample, bound once (a checkpoint load swaps the space)
        sample = g.env.action_space.sample
        random_policy = lambda obs: (sample(), {})  # noqa: E731
    fields: tuple[list[Any], ...] = ([], [], [], [], [], [], [])  # obs, action, reward, next_obs, term, trunc, stored
    obs_l, action_l, reward_l, next_l, term_l, trunc_l, stored_reward_l = fields
    valid_l: list[np.ndarray] = []  # track: each step's valid rows
    keep_l: list[np.ndarray] = []  # cap: each step's rows to write
    own_l: list[OwnReport] = []
    cont_l: list[tuple[int, np.ndarray]] = []  # (step in block, lives lost [N])
    extras_l: list[dict[str, Any]] = []
    keys: tuple[str, ...] = ()
    finished: list[tuple[int, float, int]] = []

    def flush() -> None:
        nonlocal pending, n_pending, finished
        k = len(term_l)
        if k == 0:
            return
        terminated = _stack(term_l).astype(bool, copy=False)  # [k, N]
        truncated = _stack(trunc_l).astype(bool, copy=False)
        reward = _stack(reward_l).astype(np.float32, copy=False)
        done = terminated | truncated
        if track:
            valid = _stack(valid_l)
        elif next_step:  # a reset row follows each end; the env's own carries over from the last block
            valid, pending = _reset_rows(done, pending)
            n_pending = int(np.count_nonzero(pending))
            stats.env_steps += int(valid.sum())
        else:
            valid = np.ones((k, n), dtype=bool)
            stats.env_steps += k * n
        continued = None
        if cont_l:
            continued = np.zeros((k, n), dtype=bool)
            for step, lost in cont_l:
                continued[step] = lost
        if write is not None:  # [k, N]; concatenate + reshape is 3x cheaper than np.stack's per-array views
            staged = {
                "obs": stack(obs_l),
                "action": _stack(action_l),
                "reward": reward if store is None else _stack(stored_reward_l),
                "next_obs": stack(next_l),
                "terminated": terminated,
                "truncated": truncated,
            }
            for key in keys:
                staged[key] = _stack([np.asarray(e[key]) for e in extras_l])
            rows_written = _stack(keep_l) if cap is not None else valid
            all_rows = bool(rows_written.all())
            write(staged, None if all_rows else rows_written)
            tally.written += k * n if all_rows else int(rows_written.sum())
        if sum_rewards or done.any():
            finished = book_block(g, done, valid, reward if sum_rewards else None, own_l, continued)
            if not count_ends:  # (counted step by step where a stop condition reads them)
                real_ends = done & valid
                tally.learning_ends += int(real_ends.sum())
                tally.episodes += int((real_ends if continued is None else real_ends & ~continued).sum())
        else:
            finished = []
        g._steps += k
        for staged_list in (*fields, valid_l, keep_l, own_l, cont_l, extras_l):
            staged_list.clear()

    def booked(env: int, episode_return: float, length: int) -> None:  # evaluation: every episode, in order
        tally.finished.append((env, episode_return, length))  # type: ignore[union-attr]
        if outer is not None:
            outer(env, episode_return, length)

    outer = g.on_episode
    if tally.finished is not None:
        g.on_episode = booked
    try:
        while True:
            valid = ~pending if n_pending else all_valid  # (kept current only when tracking)
            request = yield obs, (valid if track else None)
            # 1. act
            action, extras = random_policy(obs) if request is None else request
            step_keys = tuple(extras) if extras else ()
            if step_keys != keys:  # random and policy steps with extras do not share a block
                flush()
                keys = step_keys
            # 2. step the env
            next_obs, reward, terminated, truncated, info = env_step(action)
            carry = next_obs
            any_done, done = False, no_rows
            if look:
                terminated = np.asarray(terminated, dtype=bool)
                truncated = np.asarray(truncated, dtype=bool)
                any_done = terminated.tobytes() != no_done or truncated.tobytes() != no_done
                done = terminated | truncated if any_done else no_rows
                # 4. the true final observation
                if any_done and same_step:
                    next_obs = next_obs.copy() if plain else tree_copy(next_obs)
                    for row in done.nonzero()[0]:
                        if plain:
                            next_obs[row] = info["final_obs"][row]
                        else:
                            tree_map(lambda dst, src, i=row: dst.__setitem__(i, src), next_obs, info["final_obs"][row])
                elif any_done and disabled:
                    next_obs = next_obs.copy() if plain else tree_copy(next_obs)
                    carry, _ = g.env.reset(options={"reset_mask": done})
            # 5. the env's own episode reports, and lives lost; the episodes themselves are booked per block
            if info:
                own = env_episodes(info, mode)
                if own is not None:
                    own_l.append((len(term_l), *own))
                if any_done and may_continue and (lost := episode_continues(info, mode)) is not None:
                    cont_l.append((len(term_l), lost))
            if write is not None:
                obs_l.append(obs if store is None else None)
                action_l.append(action)
                next_l.append(next_obs)
                if keys:
                    extras_l.append(extras)
            reward_l.append(reward)
            term_l.append(terminated)
            trunc_l.append(truncated)
            if track:  # 3. NEXT_STEP reset rows are not transitions; the counter every hook reads
                valid_l.append(valid)
                stats.env_steps += n - n_pending
                if cap is not None and rows is not None:
                    keep = valid & (rows < cap)
                    rows += keep
                    keep_l.append(keep)
                if count_ends and any_done:
                    ends_now = done & valid
                    tally.learning_ends += int(ends_now.sum())
                    if cont_l and cont_l[-1][0] == len(term_l) - 1:  # a life lost is no episode's end
                        ends_now = ends_now & ~cont_l[-1][1]
                    tally.episodes += int(ends_now.sum())
                    if ended is not None:
                        ended += ends_now
                if after is not None:
                    after(reward, done, valid, done | ~valid if any_done or n_pending else None)
                if store is not None and write is not None:
                    obs_l[-1], next_l[-1], stored = store(obs, next_obs, np.asarray(reward, dtype=np.float32))
                    stored_reward_l.append(stored)
                if next_step and (any_done or n_pending):  # envs that just ended owe a reset step next
                    pending = done & valid
                    n_pending = int(np.count_nonzero(pending))
            # 6. carry
            obs = carry
            if len(term_l) == block:
                flush()
    finally:
        flush()
        g.on_episode = outer
        g.obs = obs
        g.pending = pending
        g.finished = finished


def one_env_steps(g: Stepped, write: Callable[..., None] | None, tally: Tally, hooks: StepHooks, block: int) -> Steps:
    """:func:`vector_steps` for ``OneEnvVector`` under SAME_STEP: the env copy's own ``step`` and ``reset``,
    Python scalars for the episode's return and length, each field a list until the block is written. It leaves
    ``OneEnvVector``'s bookkeeping as its ``step`` would. Same arguments as :func:`vector_steps`."""
    venv: OneEnvVector = g.env
    env, stats, on_episode = venv.envs[0], g.stats, g.on_episode
    env_step, sample, dtype = env.step, venv.single_action_space.sample, venv._obs_dtype
    track, sum_rewards = tally.track, g._sum_rewards  # (one env under SAME_STEP: every row is written, no cap)
    after, store = (hooks.after_step, hooks.store) if track else (None, None)
    stage_dtype = None if store is not None else dtype  # stored as the agent saw it: normalised float32
    rows, ended, finished_out = tally.rows, tally.ended, tally.finished
    one_valid = g._all_valid
    obs = g.obs[0]  # type: ignore[index]
    raw = venv._env_obs[0]
    ep_return, ep_length = float(g.ep_return[0]), int(g._steps - g._ep_start[0])
    fields: tuple[list[Any], ...] = ([], [], [], [], [], [])  # obs, action, reward, next_obs, terminated, truncated
    obs_l, action_l, reward_l, next_l, term_l, trunc_l = fields
    extras_l: list[dict[str, Any]] = []
    keys: tuple[str, ...] = ()  # the extras of the staged steps (a block holds one set of fields)
    done = False
    taken = 0  # steps taken
    last_episode: tuple[int, float, int] | None = None  # the episode the latest step ended

    def flush() -> None:
        k = len(obs_l)
        if k == 0:
            return
        if write is not None:
            staged = {
                "obs": np.array(obs_l, dtype=stage_dtype)[:, None],
                "action": np.array(action_l)[:, None],
                "reward": np.array(reward_l, dtype=np.float32)[:, None],
                "next_obs": np.array(next_l, dtype=stage_dtype)[:, None],
                "terminated": np.array(term_l, dtype=bool)[:, None],
                "truncated": np.array(trunc_l, dtype=bool)[:, None],
            }
            for key in keys:
                staged[key] = np.stack([np.asarray(e[key]) for e in extras_l])
            write(staged)
            tally.written += k
        for staged_list in (*fields, extras_l):
            staged_list.clear()

    try:
        while True:
            request = yield obs[None], (one_valid if track else None)
            # 1. act (a random action from the single space, as random_policy draws it for one env)
            if request is None:
                action, extras = sample(), None
            else:
                batched, extras = request
                action = batched[0]
            step_keys = tuple(extras) if extras else ()
            if step_keys != keys:  # random and policy steps with extras do not share a block
                flush()
                keys = step_keys
            if keys:
                extras_l.append(extras)  # type: ignore[arg-type]
            # 2. step the env copy; its observation copied in the space's dtype, as OneEnvVector returns it
            raw, reward, terminated, truncated, info = env_step(action)
            next_obs = np.array(raw, dtype=dtype)
            stored_obs, stored_next, stored_reward = obs, next_obs, reward
            taken += 1
            stats.env_steps += 1
            ep_length += 1
            if sum_rewards:
                ep_return += float(np.float32(reward))  # float32 rewards summed in float64, as step sums them
            done = bool(terminated or truncated)
            last_episode = None
            if done:
                # 5. the episode's statistics (the env's own where its recorder reports them)
                own = info.get(ENV_EPISODE_KEY)
                episode = (float(own["r"]), int(own["l"])) if own is not None else (ep_return, ep_length)
                stats.record(*episode)
                last_episode = (0, *episode)
                if finished_out is not None:
                    finished_out.append(last_episode)
                if on_episode is not None:
                    on_episode(0, *episode)
                tally.episodes += 1
                tally.learning_ends += 1
                if ended is not None:
                    ended[0] += 1
            if track:
                if rows is not None:
                    rows[0] += 1
                if after is not None:
                    flags = np.array((done,))
                    after(np.array((reward,), dtype=np.float32), flags, one_valid, flags if done else None)
                if store is not None and write is not None:
                    s_obs, s_next, s_reward = store(obs[None], next_obs[None], np.array((reward,), dtype=np.float32))
                    stored_obs, stored_next, stored_reward = s_obs[0], s_next[0], s_reward[0]
            if write is not None:
                obs_l.append(stored_obs)
                action_l.append(action.copy() if type(action) is np.ndarray else action)
                reward_l.append(stored_reward)
                next_l.append(stored_next)
                term_l.append(terminated)
                trunc_l.append(truncated)
            else:
                obs_l.append(None)  # only counted: the block boundary is the same with or without a sink
            # 6. carry; SAME_STEP's reset for an episode that ended
            if done:
                ep_return, ep_length = 0.0, 0
                raw, _ = env.reset()
                obs = np.array(raw, dtype=dtype)
            else:
                obs = next_obs
            if len(obs_l) == block:
                flush()
    finally:
        flush()
        # the state the vector layer would have left: the gatherer's counters and OneEnvVector's own bookkeeping
        g._steps += taken
        g._ep_start[0] = g._steps - ep_length
        g.ep_return[0] = ep_return
        g.obs = obs[None]
        venv._env_obs[0] = raw
        venv._autoreset_envs[0] = done
        g.finished = [] if last_episode is None else [last_episode]


def _stack(arrays: list[Any]) -> np.ndarray:
    """``k`` arrays of one shape ``[N, ...]`` -> a C-contiguous ``[k, N, ...]`` of the first one's dtype (what
    the buffer copies from; CartPole's vector env returns Fortran-ordered observations)."""
    first = np.asarray(arrays[0])
    out = np.empty((len(arrays), *first.shape), dtype=first.dtype)
    np.concatenate(arrays, out=out.reshape(-1, *first.shape[1:]))
    return out


def _stack_tree(trees: list[Any]) -> Any:
    """:func:`_stack` leaf by leaf, for Dict / Tuple observations."""
    return tree_map(lambda *leaves: _stack(list(leaves)), *trees)


def _reset_rows(done: np.ndarray, pending: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """NEXT_STEP: ``(valid [k, N], pending after the block [N])`` for a block of ``done`` ``[k, N]`` that starts
    with ``pending`` reset rows: the step after an env's end is its reset row (``valid = ~pending``, then
    ``pending = done & valid``). A reset row reports no end, so ``valid[t] = ~done[t - 1]``; should an env
    report one anyway, the rows are walked one by one."""
    valid = np.empty(done.shape, dtype=bool)
    valid[0] = ~pending
    np.logical_not(done[:-1], out=valid[1:])
    if (done & ~valid).any():
        for t in range(len(done)):
            valid[t] = ~pending
            pending = done[t] & valid[t]
        return valid, pending
    return valid, done[-1] & valid[-1]

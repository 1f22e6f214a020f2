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
from functools import partial
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
    :class:`cardio.envs.atari.EpisodicLife`); ``False`` where the copies cannot be asked (native vector envs)."""
    try:
        return any(env.get_attr("continues_episodes"))  # type: ignore[attr-defined]
    except Exception:  # AttributeError from every copy without one; native vector envs have no copies to ask
        return False


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
        self._episodes_may_continue = episodes_may_continue(self.env)
        # one env, array actions: sample the single space (looked up per call: a resumed checkpoint replaces it)
        nested = isinstance(self.env.single_action_space, (gym.spaces.Dict, gym.spaces.Tuple))
        self._single_space = self.num_envs == 1 and not nested

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

    # ---------------------------------------------------------------------------------------------- collect
    def collect(
        self,
        buffer: Any,
        steps: int,
        policy: Policy | None = None,
        *,
        random_until: int = 0,
        before_step: Callable[[], None] | None = None,
        on_fresh: Callable[[np.ndarray], None] | None = None,
        block: int = 256,
    ) -> tuple[int, int]:
        """``steps`` vector steps written straight into ``buffer``: the same transitions, episode statistics and
        env state as ``steps`` times ``buffer.add(*self.step(policy))`` (``tests/test_collect.py`` compares them
        bit for bit), at a fraction of the cost: no transition dict, flag conversion or buffer write per step.

        Steps are staged in lists and written as one block (``CircularBuffer.add_block``) every ``block`` steps
        and at the end, so the buffer holds them all when ``collect`` returns, not before. One env under SAME_STEP
        (``make_env(num_envs=1)``) steps the env copy itself, without the vector layer. Episode statistics (and
        the ``on_episode`` hook) of vector envs are booked per block, in the order ``step`` would book them.

        Args:
            buffer: where the transitions go: its ``add_block`` if it has one, else ``add`` per step.
            steps: vector steps to take.
            policy: ``obs [N, ...] -> (action [N, ...], extras)``; ``None``: uniform random actions throughout.
            random_until: uniform random actions while ``stats.env_steps`` is below this (off-policy warm-up).
            before_step: called before every vector step (the runner advances its schedules there).
            on_fresh: called after a step with ``[N]`` bool, the envs that ended an episode or were a NEXT_STEP
                reset row, when there are any (the runner's ``on_episode_end``).
            block: vector steps staged between buffer writes.

        Returns:
            ``(transitions, episodes)``: rows written (reset rows excluded) and episodes ended.
        """
        if self.obs is None:
            self.reset()
        if steps <= 0:
            return 0, 0
        write = getattr(buffer, "add_block", None) or partial(_add_rows, buffer)
        args = (write, steps, policy, random_until, before_step, on_fresh, max(int(block), 1))
        fast = not self._episodes_may_continue  # Atari lives: only step() books a life lost as no episode
        if fast and isinstance(self.env, OneEnvVector) and self.env._plain_obs and self.mode == AutoresetMode.SAME_STEP:
            return self._collect_one(*args)
        if fast and isinstance(self.obs, np.ndarray):
            return self._collect_vector(*args)
        written = episodes = 0  # nested observations, episodes that may continue: step by step
        for _ in range(steps):
            if before_step is not None:
                before_step()
            random = policy is None or self.stats.env_steps < random_until
            transition, valid = self.step(self.random_policy if random else policy)  # type: ignore[arg-type]
            buffer.add(transition, valid)
            fresh = ~valid | transition["terminated"] | transition["truncated"]
            written += int(valid.sum())
            episodes += len(self.finished)
            if on_fresh is not None and fresh.any():
                on_fresh(fresh)
        return written, episodes

    def _collect_one(
        self,
        write: Callable[..., None],
        steps: int,
        policy: Policy | None,
        random_until: int,
        before_step: Callable[[], None] | None,
        on_fresh: Callable[[np.ndarray], None] | None,
        block: int,
    ) -> tuple[int, int]:
        """``collect`` for ``OneEnvVector`` under SAME_STEP: the env copy's own ``step`` and ``reset``, Python
        scalars for the episode's return and length, each field a list until the block is written."""
        venv: OneEnvVector = self.env  # type: ignore[assignment]
        env, stats, on_episode = venv.envs[0], self.stats, self.on_episode
        env_step, sample, dtype = env.step, venv.single_action_space.sample, venv._obs_dtype
        sum_rewards, fresh = self._sum_rewards, np.ones(1, dtype=bool)
        obs = self.obs[0]  # type: ignore[index]
        raw = venv._env_obs[0]
        ep_return, ep_length = float(self.ep_return[0]), int(self._steps - self._ep_start[0])
        fields: tuple[list[Any], ...] = ([], [], [], [], [], [])  # obs, action, reward, next_obs, terminated, truncated
        obs_l, action_l, reward_l, next_l, term_l, trunc_l = fields
        extras_l: list[dict[str, Any]] = []
        keys: tuple[str, ...] = ()  # the extras of the staged steps (a block holds one set of fields)
        done = False
        episodes = last_end = 0

        def flush() -> None:
            k = len(obs_l)
            if k == 0:
                return
            staged = {
                "obs": np.array(obs_l, dtype=dtype)[:, None],
                "action": np.array(action_l)[:, None],
                "reward": np.array(reward_l, dtype=np.float32)[:, None],
                "next_obs": np.array(next_l, dtype=dtype)[:, None],
                "terminated": np.array(term_l, dtype=bool)[:, None],
                "truncated": np.array(trunc_l, dtype=bool)[:, None],
            }
            for key in keys:
                staged[key] = np.stack([np.asarray(e[key]) for e in extras_l])
            write(staged)
            for staged_list in (*fields, extras_l):
                staged_list.clear()

        for i in range(steps):
            if before_step is not None:
                before_step()
            # 1. act (the single space's sample, as random_policy draws it for one env)
            if policy is None or stats.env_steps < random_until:
                action, extras = sample(), None
            else:
                batched, extras = policy(obs[None])
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
            obs_l.append(obs)
            action_l.append(action.copy() if type(action) is np.ndarray else action)
            reward_l.append(reward)
            next_l.append(next_obs)
            term_l.append(terminated)
            trunc_l.append(truncated)
            stats.env_steps += 1
            ep_length += 1
            if sum_rewards:
                ep_return += float(np.float32(reward))  # float32 rewards summed in float64, as step sums them
            done = bool(terminated or truncated)
            if done:
                # 5. the episode's statistics (the env's own where its recorder reports them), then SAME_STEP's reset
                own = info.get(ENV_EPISODE_KEY)
                episode = (float(own["r"]), int(own["l"])) if own is not None else (ep_return, ep_length)
                stats.record(*episode)
                if on_episode is not None:
                    on_episode(0, *episode)
                episodes, last_end = episodes + 1, i
                ep_return, ep_length = 0.0, 0
                raw, _ = env.reset()
                obs = np.array(raw, dtype=dtype)
                if on_fresh is not None:
                    on_fresh(fresh)
            else:
                obs = next_obs  # 6. carry
            if len(obs_l) == block:
                flush()
        flush()
        # the state step() would have left: the gatherer's counters and OneEnvVector's own bookkeeping
        self._steps += steps
        self._ep_start[0] = self._steps - ep_length
        self.ep_return[0] = ep_return
        self.obs = obs[None]
        venv._env_obs[0] = raw
        venv._autoreset_envs[0] = done
        self.finished = [(0, stats.returns[-1], stats.lengths[-1])] if episodes and last_end == steps - 1 else []
        return steps, episodes

    def _collect_vector(
        self,
        write: Callable[..., None],
        steps: int,
        policy: Policy | None,
        random_until: int,
        before_step: Callable[[], None] | None,
        on_fresh: Callable[[np.ndarray], None] | None,
        block: int,
    ) -> tuple[int, int]:
        """``collect`` for any vector env with array observations: ``step`` without the transition dict, each
        field a list of ``[N, ...]`` arrays until the block is written; episode ends booked per block. Without
        hooks that read the step counter between steps, NEXT_STEP's reset rows are found per block too."""
        env_step, stats, n, mode = self.env.step, self.stats, self.num_envs, self.mode
        same_step, disabled = mode == AutoresetMode.SAME_STEP, mode == AutoresetMode.DISABLED
        next_step = mode == AutoresetMode.NEXT_STEP
        no_done, all_valid, sum_rewards = self._no_done, self._all_valid, self._sum_rewards
        obs, pending, n_pending = self.obs, self._pending, self._n_pending
        # per step: the counter, reset rows and episode ends, only where something reads them between steps
        warm_up = policy is not None and stats.env_steps < random_until  # random actions, then the policy's
        track = before_step is not None or on_fresh is not None or warm_up
        random = policy is None  # (decided per step when tracked)
        look = track or same_step or disabled  # whether a step needs to know if an episode ended
        no_rows = np.zeros(n, dtype=bool)
        random_policy = self.random_policy
        if not self._single_space:  # the batched space's sample, bound once (a checkpoint load swaps the space)
            sample = self.env.action_space.sample
            random_policy = lambda obs: (sample(), {})  # noqa: E731
        fields: tuple[list[Any], ...] = ([], [], [], [], [], [])  # obs, action, reward, next_obs, terminated, truncated
        obs_l, action_l, reward_l, next_l, term_l, trunc_l = fields
        valid_l: list[np.ndarray] = []
        own_l: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []  # (step in block, reported, r, l)
        extras_l: list[dict[str, Any]] = []
        keys: tuple[str, ...] = ()
        written = episodes = 0
        finished: list[tuple[int, float, int]] = []

        def flush() -> None:
            nonlocal written, episodes, finished, pending, n_pending
            k = len(obs_l)
            if k == 0:
                return
            staged = {  # [k, N, ...]; concatenate + reshape is 3x cheaper than np.stack's per-array views
                "obs": _stack(obs_l),
                "action": _stack(action_l),
                "reward": _stack(reward_l).astype(np.float32, copy=False),
                "next_obs": _stack(next_l),
                "terminated": _stack(term_l).astype(bool, copy=False),
                "truncated": _stack(trunc_l).astype(bool, copy=False),
            }
            for key in keys:
                staged[key] = _stack([np.asarray(e[key]) for e in extras_l])
            done = staged["terminated"] | staged["truncated"]  # [k, N]
            if track:
                valid = _stack(valid_l)
            elif next_step:  # a reset row follows each end; the env's own carries over from the last block
                valid, pending = _reset_rows(done, pending)
                n_pending = int(np.count_nonzero(pending))
                stats.env_steps += int(valid.sum())
            else:
                valid = np.ones((k, n), dtype=bool)
                stats.env_steps += k * n
            all_rows = valid.all()
            write(staged, None if all_rows else valid)
            written += k * n if all_rows else int(valid.sum())
            if sum_rewards or done.any():
                finished = self._book_block(done, valid, staged["reward"] if sum_rewards else None, own_l)
                episodes += int((done & valid).sum())
            else:
                finished = []
            self._steps += k
            for staged_list in (*fields, valid_l, own_l, extras_l):
                staged_list.clear()

        for _ in range(steps):
            if track:
                if before_step is not None:
                    before_step()
                random = policy is None or stats.env_steps < random_until
            # 1. act
            action, extras = random_policy(obs) if random else policy(obs)  # type: ignore[misc]
            step_keys = tuple(extras) if extras else ()
            if step_keys != keys:  # random and policy steps with extras do not share a block
                flush()
                keys = step_keys
            # 2. step the env
            next_obs, reward, terminated, truncated, info = env_step(action)
            carry = next_obs
            if look:
                terminated = np.asarray(terminated, dtype=bool)
                truncated = np.asarray(truncated, dtype=bool)
                any_done = terminated.tobytes() != no_done or truncated.tobytes() != no_done
                done = terminated | truncated if any_done else no_rows
                # 4. the true final observation (see step)
                if any_done and same_step:
                    next_obs = next_obs.copy()
                    for row in done.nonzero()[0]:
                        next_obs[row] = info["final_obs"][row]
                elif any_done and disabled:
                    next_obs = next_obs.copy()
                    carry, _ = self.env.reset(options={"reset_mask": done})
            obs_l.append(obs)
            action_l.append(action)
            reward_l.append(reward)
            next_l.append(next_obs)
            term_l.append(terminated)
            trunc_l.append(truncated)
            if keys:
                extras_l.append(extras)
            # 5. the env's own episode reports; the episodes themselves are booked when the block is written
            if info:
                own = env_episodes(info, mode)
                if own is not None:
                    own_l.append((len(obs_l) - 1, *own))
            if track:  # 3. NEXT_STEP reset rows are not transitions; the counter every hook reads
                valid = ~pending if n_pending else all_valid
                valid_l.append(valid)
                stats.env_steps += n - n_pending
                if on_fresh is not None and (any_done or n_pending):
                    on_fresh(done | ~valid)
                if next_step and (any_done or n_pending):  # envs that just ended owe a reset step next
                    pending = done & valid
                    n_pending = int(np.count_nonzero(pending))
            # 6. carry
            obs = carry
            if len(obs_l) == block:
                flush()
        flush()
        self.obs = obs
        self.pending = pending
        self.finished = finished
        return written, episodes

    def _book_block(
        self,
        done: np.ndarray,
        valid: np.ndarray,
        reward: np.ndarray | None,
        own: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]],
    ) -> list[tuple[int, float, int]]:
        """Book a block of ``k`` steps just written (``done``, ``valid`` ``[k, N]``) exactly as ``k`` calls of
        ``step`` would: each episode that ended (return, length, ``on_episode``) in step order, then env order;
        each env's episode start moved past its last end; the running sums carried on. ``self._steps`` is still
        the count before the block. Returns the block's last step's episodes.

        Args:
            done: ``terminated | truncated`` of each step.
            valid: the rows that are transitions.
            reward: ``[k, N]`` float32 rewards to sum (``None``: the env reports every return itself).
            own: ``(step, reported [N], return [N], length [N])`` from the env's recorder, for steps that ended some.
        """
        k = len(done)
        cols, steps = done.T.nonzero()  # every end, env by env and in time order within an env
        first = np.ones(len(cols), dtype=bool)  # the env's first end in the block
        first[1:] = cols[1:] != cols[:-1]
        last = np.ones(len(cols), dtype=bool)  # the env's last end in the block
        last[:-1] = first[1:]
        ep_returns = np.zeros(len(cols))
        if reward is not None:
            ep_returns = self._sum_rewards_block(reward, valid, done, cols, steps, first, last)
        if not len(cols):
            return []
        # lengths: an episode started at the previous end of the same env (plus NEXT_STEP's reset row)
        ends_at = self._steps + steps + 1  # _steps after the step that ended it
        offset = int(self.mode == AutoresetMode.NEXT_STEP)
        lengths = ends_at - np.where(first, self._ep_start[cols], np.roll(ends_at, 1) + offset)
        if own:  # the env's own return and length where its recorder reports them
            reported = np.zeros(done.shape, dtype=bool)
            own_return, own_length = np.zeros(done.shape), np.zeros(done.shape, dtype=np.int64)
            for step, rep, ret, length in own:
                reported[step], own_return[step], own_length[step] = rep, ret, length
            mine = reported[steps, cols]
            ep_returns = np.where(mine, own_return[steps, cols], ep_returns)
            lengths = np.where(mine, own_length[steps, cols], lengths)
        self._ep_start[cols[last]] = ends_at[last] + offset
        # book the ends (valid rows only) in step order, then env order, as step-by-step calls would
        order = np.lexsort((cols, steps))
        order = order[valid[steps[order], cols[order]]]
        ended, ended_returns, ended_lengths = cols[order].tolist(), ep_returns[order].tolist(), lengths[order].tolist()
        self.stats.record_many(ended_returns, ended_lengths)
        finished = list(zip(ended, ended_returns, ended_lengths, strict=True))
        if self.on_episode is not None:
            for env_index, episode_return, length in finished:
                self.on_episode(env_index, episode_return, length)
        return [f for f, s in zip(finished, steps[order].tolist(), strict=True) if s == k - 1]

    def _sum_rewards_block(
        self,
        reward: np.ndarray,
        valid: np.ndarray,
        done: np.ndarray,
        cols: np.ndarray,
        steps: np.ndarray,
        first: np.ndarray,
        last: np.ndarray,
    ) -> np.ndarray:
        """The return of each end ``(steps, cols)`` of a block, and ``self.ep_return`` carried on: the very numbers
        ``step`` reaches adding float32 rewards one by one into float64 sums. Integer rewards (CartPole's 1s) are
        summed in any order exactly, so one cumulative sum serves; anything else is added step by step."""
        carry = self.ep_return
        rewards = np.where(valid, reward, np.float64(0.0))  # [k, N] float64 (a Python 0.0 would keep float32)
        integral = bool(np.all(rewards == np.rint(rewards)) and np.all(carry == np.rint(carry)))
        if integral and float(np.abs(rewards).sum() + np.abs(carry).max()) < 2.0**53:
            total = np.cumsum(rewards, axis=0)  # [k, N]
            ends = total[steps, cols]
            before = np.where(first, -carry[cols], total[np.roll(steps, 1), cols])  # the previous end's total
            self.ep_return = carry + total[-1]
            self.ep_return[cols[last]] = total[-1, cols[last]] - ends[last]
            return ends - before
        sums = np.empty(rewards.shape)
        acc = carry.copy()
        for t in range(len(rewards)):
            np.add(acc, reward[t], out=acc, where=valid[t])
            sums[t] = acc
            acc[done[t]] = 0.0
        self.ep_return = acc
        return sums[steps, cols]

    def random_policy(self, obs: Tree) -> tuple[Any, dict[str, Any]]:
        """Uniform actions from the env's (seeded) action space: warm-up is just a rollout with this. One env
        with an array action draws from the single space (as :meth:`collect` does; 1 us cheaper a step)."""
        if self._single_space:
            return np.array((self.env.single_action_space.sample(),)), {}
        return self.env.action_space.sample(), {}

    def fps(self) -> float:
        """Emitted transitions per wall-clock second since construction."""
        return self.stats.env_steps / max(time.perf_counter() - self.started, 1e-9)


def _stack(arrays: list[Any]) -> np.ndarray:
    """``k`` arrays of one shape ``[N, ...]`` -> a C-contiguous ``[k, N, ...]`` of the first one's dtype (what
    the buffer copies from; CartPole's vector env returns Fortran-ordered observations)."""
    first = np.asarray(arrays[0])
    out = np.empty((len(arrays), *first.shape), dtype=first.dtype)
    np.concatenate(arrays, out=out.reshape(-1, *first.shape[1:]))
    return out


def _reset_rows(done: np.ndarray, pending: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """NEXT_STEP: ``(valid [k, N], pending after the block [N])`` for a block of ``done`` ``[k, N]`` that starts
    with ``pending`` reset rows: the step after an env's end is its reset row (``step``'s ``~pending``, with
    ``pending = done & valid``). A reset row reports no end, so ``valid[t] = ~done[t - 1]``; should an env
    report one anyway, the rows are walked one by one, as ``step`` does."""
    valid = np.empty(done.shape, dtype=bool)
    valid[0] = ~pending
    np.logical_not(done[:-1], out=valid[1:])
    if (done & ~valid).any():
        for t in range(len(done)):
            valid[t] = ~pending
            pending = done[t] & valid[t]
        return valid, pending
    return valid, done[-1] & valid[-1]


def _add_rows(buffer: Any, block: dict[str, Any], valid: np.ndarray | None = None) -> None:
    """A block of ``k`` steps into a buffer without ``add_block``: one ``add`` per step."""
    for t in range(len(next(iter(block.values())))):
        buffer.add(tree_map(lambda x, t=t: x[t], block), None if valid is None else valid[t])

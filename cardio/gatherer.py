"""Gatherer: steps a vector env with a policy and writes the transitions into a sink, block by block.

Legend
    N          number of envs in the vector env; row ``i`` of every array is env ``i``.
    done       ``terminated | truncated``: the episode ended on this step (either way).
    pending    ``[N]`` bool, NEXT_STEP autoreset only: env ``i`` ended an episode on the previous step, so this
               step is its reset. The env ignores the action and returns ``(reset_obs, 0, False, False)``;
               ``final_obs -> reset_obs`` is not a transition and is masked out (``valid[i] = False``).

Under SAME_STEP autoreset (cardio's default, see ``make_env``) a done step already returns the reset observation
and puts the true final observation in ``info["final_obs"]``; the gatherer writes that final observation into
``next_obs`` so truncated episodes bootstrap from the right state. Under DISABLED it resets finished envs itself.
Episode returns and lengths are the env's own where ``make_env``'s recorder reports them (``cardio/episodes.py``).

There is one collection path, :meth:`Gatherer.collect`: off-policy phases, on-policy rollouts, evaluation,
multi-seed lockstep (:func:`collect_lockstep`), dataset recording and :meth:`Gatherer.step` all run the stepping
loops of ``cardio/stepping.py``. What differs between them is data: the sink (a replay buffer, a rollout buffer,
nothing), the stop condition (:class:`Until`) and the per-step state kept current (schedules through
``before_step``, the normaliser through ``before_act``, fresh episodes and stored values through
:class:`~cardio.stepping.StepHooks`).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

from cardio.envs.single import OneEnvVector
from cardio.episodes import EpisodeStats, episodes_may_continue, reports_own_returns
from cardio.pytree import Tree, tree_map
from cardio.stepping import StepHooks, Steps, Tally, one_env_steps, vector_steps

__all__ = ["EpisodeStats", "Gatherer", "Policy", "StepHooks", "Tally", "Until", "as_vector_env", "collect_lockstep"]

Policy = Callable[[Tree], tuple[Any, dict[str, Any]]]
"""``obs [N, ...] -> (action [N, ...], extras)``; extras (``log_prob``, ``value``...) are stored with the step."""


@dataclass
class Until:
    """When a collection stops besides its step budget; each set condition is checked after every step."""

    rows: int | None = None
    """Every stream holds this many written rows; a stream's rows beyond it are dropped (an on-policy rollout:
    under NEXT_STEP a stream loses a row to each reset, so collection goes on until every stream is full)."""
    episodes_per_env: np.ndarray | None = None
    """``[N]``: every env has ended this many episodes (evaluation; lives lost are no episode's end)."""
    learning_ends: int | None = None
    """This many done rows over all envs together (``train_freq_unit=episode``, SB3's count)."""
    env_steps: int | None = None
    """No step starts once the gatherer's env steps reach this (a phase ends with the run)."""

    def counts(self) -> bool:
        return self.rows is not None or self.episodes_per_env is not None or self.learning_ends is not None

    def reached(self, tally: Tally) -> bool:
        if self.rows is not None and tally.rows is not None and tally.rows.min() >= self.rows:
            return True
        quota = self.episodes_per_env
        if quota is not None and tally.ended is not None and bool((tally.ended >= quota).all()):
            return True
        return self.learning_ends is not None and tally.learning_ends >= self.learning_ends


def as_vector_env(env: gym.Env | gym.vector.VectorEnv) -> gym.vector.VectorEnv:
    """A plain ``gym.Env`` becomes a one-env SyncVectorEnv (SAME_STEP), so everything sees ``[N, ...]``."""
    if isinstance(env, gym.vector.VectorEnv):
        return env
    return OneEnvVector(lambda: env, autoreset_mode=AutoresetMode.SAME_STEP)


class Gatherer:
    """Runs a policy in a (vector) env and writes its transitions, keeping the episodes' statistics.

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
        # each env's count when its episode started; under NEXT_STEP one more, as the reset row does not count).
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

    def reset(self, seed: int | None = None) -> Tree:
        """Reset every env (seeded the first time with the gatherer's seed) and drop partial episodes."""
        if seed is None and self.obs is None:
            seed = self.seed
        self.obs, _ = self.env.reset(seed=seed)
        self.pending = np.zeros(self.num_envs, dtype=bool)
        self.ep_return[:] = 0.0
        self.ep_length = np.zeros(self.num_envs, dtype=np.int64)
        return self.obs

    # ---------------------------------------------------------------------------------------------- collect
    def collect(
        self,
        sink: Any,
        steps: int | None = None,
        policy: Policy | None = None,
        *,
        random_until: int = 0,
        until: Until | None = None,
        before_step: Callable[[], None] | None = None,
        before_act: Callable[[Any, np.ndarray | None], None] | None = None,
        hooks: StepHooks | None = None,
        record: bool = False,
        block: int = 256,
    ) -> Tally:
        """Up to ``steps`` vector steps (or until ``until``) written straight into ``sink``: the transitions,
        episode statistics and env state of stepping one step at a time (``tests/test_gatherer_reference.py``
        compares them bit for bit), without a transition dict or buffer write per step.

        Steps are staged in lists and written as one block (``add_block``) every ``block`` steps and at the end,
        so the sink holds them all when ``collect`` returns, not before.

        Args:
            sink: where the transitions go (its ``add_block``, else ``add`` per step); ``None``: nowhere.
            steps: vector steps at most (``None``: until ``until`` says stop).
            policy: ``obs [N, ...] -> (action [N, ...], extras)``; ``None``: uniform random actions throughout.
            random_until: uniform random actions while ``stats.env_steps`` is below this (off-policy warm-up).
            until: stop conditions besides ``steps``.
            before_step: called before every vector step (the runner advances its schedules there).
            before_act: ``(obs [N, ...], valid [N])`` before the policy acts on ``obs`` (the normaliser).
            hooks: per-step state kept current after every step (:class:`~cardio.stepping.StepHooks`).
            record: keep every finished ``(env, return, length)`` in ``Tally.finished``, in booking order.
            block: vector steps staged between writes.

        Returns:
            The :class:`~cardio.stepping.Tally`: rows written, episodes ended, and the counts ``until`` read.
        """
        if self.obs is None:
            self.reset()
        until = until or Until()
        budget = sys.maxsize if steps is None else int(steps)
        if budget <= 0:
            return Tally()
        hooks = hooks or StepHooks()
        warm_up = policy is not None and self.stats.env_steps < random_until  # random actions, then the policy's
        per_step = hooks.after_step is not None or hooks.store is not None
        track = before_step is not None or before_act is not None or per_step or warm_up or until.counts()
        tally = self._tally(track, until, record)
        stepper = self._stepper(sink, tally, hooks, block)
        stats, random = self.stats, policy is None
        counts = until.counts()
        try:
            obs, valid = next(stepper)
            for _ in range(budget):
                if until.env_steps is not None and stats.env_steps >= until.env_steps:
                    break
                if before_step is not None:
                    before_step()
                if track:
                    random = policy is None or stats.env_steps < random_until
                if before_act is not None:
                    before_act(obs, valid)
                obs, valid = stepper.send(None if random else policy(obs))  # type: ignore[misc]
                if counts and until.reached(tally):
                    break
        finally:
            stepper.close()
        return tally

    def _tally(self, track: bool, until: Until, record: bool) -> Tally:
        counts = np.zeros(self.num_envs, dtype=np.int64)
        return Tally(
            track=track,
            cap=until.rows,
            count_ends=until.episodes_per_env is not None or until.learning_ends is not None,
            rows=None if until.rows is None else counts.copy(),
            ended=None if until.episodes_per_env is None else counts.copy(),
            finished=[] if record else None,
        )

    def _stepper(self, sink: Any, tally: Tally, hooks: StepHooks, block: int) -> Steps:
        """The stepping loop for this env: one env under SAME_STEP steps its copy directly, every other env
        (nested observations and lives lost included) the vector loop."""
        write = None if sink is None else getattr(sink, "add_block", None) or partial(_add_rows, sink)
        one = isinstance(self.env, OneEnvVector) and self.env._plain_obs and self.mode == AutoresetMode.SAME_STEP
        loop = one_env_steps if one and not self._episodes_may_continue else vector_steps
        return loop(self, write, tally, hooks, max(int(block), 1))

    def step(self, policy: Policy) -> tuple[dict[str, Any], np.ndarray]:
        """One vector step: ``(transition [N, ...], valid [N])``; rows with ``valid=False`` are not transitions.
        The same path as :meth:`collect` (a one-step block), for tests, notebooks and dataset recording."""
        captured = _Captured()
        self.collect(captured, 1, policy, block=1)
        return captured.transition, captured.valid

    def random_policy(self, obs: Tree) -> tuple[Any, dict[str, Any]]:
        """Uniform actions from the env's (seeded) action space: warm-up is just a rollout with this. One env
        with an array action draws from the single space (as :meth:`collect` does; 1 us cheaper a step)."""
        if self._single_space:
            return np.array((self.env.single_action_space.sample(),)), {}
        return self.env.action_space.sample(), {}

    def fps(self) -> float:
        """Emitted transitions per wall-clock second since construction."""
        return self.stats.env_steps / max(time.perf_counter() - self.started, 1e-9)


def collect_lockstep(
    gatherers: Sequence[Gatherer],
    sinks: Sequence[Any],
    steps: int,
    policy: Callable[[list[Any]], Any],
    *,
    random_until: int = 0,
    before_step: Callable[[], None] | None = None,
    block: int = 256,
) -> list[Tally]:
    """``steps`` vector steps of several gatherers together, their actions from one batched call per step (the
    multi-seed runner: one vmapped policy for S seeds). Each gatherer runs its own stepping loop, exactly as its
    :meth:`Gatherer.collect` would with ``policy = obs -> (its row of the batched actions, {})``.

    Args:
        gatherers: one per seed, in lockstep (the same env steps).
        sinks: each gatherer's buffer.
        steps: vector steps.
        policy: ``[obs of each gatherer] -> [actions of each gatherer]``.
        random_until: uniform random actions (each gatherer's own draw) while the env steps are below this.
        before_step: called before every vector step.
        block: vector steps staged between writes.
    """
    if steps <= 0:
        return [Tally() for _ in gatherers]
    for g in gatherers:
        if g.obs is None:
            g.reset()
    tallies = [Tally(track=True) for _ in gatherers]
    steppers = [g._stepper(sink, t, StepHooks(), block) for g, sink, t in zip(gatherers, sinks, tallies, strict=True)]
    stats = gatherers[0].stats
    try:
        obs = [next(s)[0] for s in steppers]
        for _ in range(steps):
            if before_step is not None:
                before_step()
            if stats.env_steps < random_until:
                requests: list[Any] = [None] * len(steppers)
            else:
                requests = [(action, {}) for action in policy(obs)]
            obs = [s.send(r)[0] for s, r in zip(steppers, requests, strict=True)]
    finally:
        for s in steppers:
            s.close()
    return tallies


class _Captured:
    """A sink that keeps the one step :meth:`Gatherer.step` collects, as ``(transition, valid)``."""

    transition: dict[str, Any]
    valid: np.ndarray

    def add_block(self, block: dict[str, Any], valid: np.ndarray | None = None) -> None:
        self.transition = tree_map(lambda x: x[0], block)
        n = len(self.transition["terminated"])
        self.valid = np.ones(n, dtype=bool) if valid is None else valid[0]


def _add_rows(buffer: Any, block: dict[str, Any], valid: np.ndarray | None = None) -> None:
    """A block of ``k`` steps into a buffer without ``add_block``: one ``add`` per step."""
    for t in range(len(next(iter(block.values())))):
        buffer.add(tree_map(lambda x, t=t: x[t], block), None if valid is None else valid[t])

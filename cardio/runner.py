"""Runner: the training loop. It composes the parts and keeps the clock; each part lives in its own module.

Counting follows SB3 so rl-zoo hyperparameters carry over unchanged: ``env_steps`` counts transitions (one
vector step of N envs is N env steps); ``train_freq`` counts vector steps; ``learning_starts``,
``total_steps``, ``log_interval``, ``eval_freq`` and the agent's own intervals count env steps. An offline
schedule (``clock = "updates"``) never steps the training env: its intervals count gradient updates (``steps``).

The parts: when to collect and when to learn is the schedule's (``cardio/schedules/``), which calls back
:meth:`Runner.collect` (the one collection path, ``cardio/gatherer.py``) and :meth:`Runner.learn`; the policy and
its between-step state are the :class:`~cardio.acting.Actor`'s; evaluation is the
:class:`~cardio.evaluation.Evaluator`'s; the finite-value checks are ``cardio/finite.py``'s; checkpoints are
``cardio/persistence.py``'s. torch is imported only when something already uses it (a torch agent).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from cardio import checkpoint, persistence
from cardio.acting import Actor
from cardio.agents.base import Agent
from cardio.buffers.circular import CircularBuffer
from cardio.callbacks import Callback
from cardio.clock import LoopState
from cardio.envs.normalize import Normalizer
from cardio.errors import ScheduleError
from cardio.evaluation import EVAL_SEED_OFFSET, Evaluator, iqm
from cardio.finite import FiniteGuard
from cardio.gatherer import Gatherer, Tally, Until
from cardio.loggers.base import Logger
from cardio.pytree import Tree
from cardio.schedules import OfflineSchedule, OffPolicySchedule, OnPolicySchedule, Schedule
from cardio.schedules.base import check_schedule

__all__ = [
    "EVAL_SEED_OFFSET",
    "Callback",
    "OffPolicySchedule",
    "OfflineSchedule",
    "OnPolicySchedule",
    "Runner",
    "ScheduleError",
    "iqm",
]


class Runner:
    """Drives training and evaluation.

    Args:
        env: training env (a vector env, or a plain env treated as one env).
        agent: anything meeting the :class:`~cardio.agents.base.Agent` contract.
        buffer: replay buffer (off-policy) or rollout buffer of ``n_steps * num_envs`` (on-policy).
        schedule: when to collect and learn: :class:`~cardio.schedules.OffPolicySchedule`,
            :class:`~cardio.schedules.OnPolicySchedule` or any :class:`~cardio.schedules.Schedule`.
        total_steps: env steps :meth:`run` trains for.
        eval_env: separate env for :meth:`evaluate` (``None``: no evaluation).
        logger: metrics sink fan-out (``None``: metrics are only returned).
        seed: seeds the training env's first reset; the eval env gets ``seed + EVAL_SEED_OFFSET``.
        log_interval: env steps between metric logs.
        eval_freq: env steps between evaluations (0: only the final one).
        eval_episodes: episodes per evaluation.
        stats_window: finished episodes averaged in ``rollout/ep_rew_mean``.
        callbacks: objects with optional ``on_step_end(runner)`` / ``on_eval(runner, metrics)``.
        checkpoint_dir: where :meth:`run` writes ``last.ckpt`` (periodically and at the end) and ``best.ckpt``
            (after each evaluation with the best ``eval/mean_reward`` so far); ``None``: never.
        checkpoint_freq: env steps between periodic checkpoints (0: only the final one).
        normalize: VecNormalize-style observation and reward normalisation (``cardio/envs/normalize.py``): a
            :class:`~cardio.envs.normalize.Normalizer`, its keyword arguments as a dict, ``True`` for the
            defaults, or ``None`` (off). Schedules store what :meth:`normalized` gives them.
        check_finite: stop with :class:`~cardio.finite.NonFiniteError` at the first NaN or infinity in a batch,
            an update's metrics or the agent's parameters, before it reaches a checkpoint (``cardio/finite.py``).
    """

    def __init__(
        self,
        env: gym.Env | gym.vector.VectorEnv,
        agent: Agent,
        buffer: CircularBuffer,
        schedule: Schedule,
        total_steps: int = 100_000,
        eval_env: gym.Env | gym.vector.VectorEnv | None = None,
        logger: Logger | None = None,
        seed: int | None = None,
        log_interval: int = 1_000,
        eval_freq: int = 10_000,
        eval_episodes: int = 10,
        stats_window: int = 100,
        callbacks: Sequence[Any] = (),
        checkpoint_dir: str | Path | None = None,
        checkpoint_freq: int = 0,
        normalize: Normalizer | Mapping[str, Any] | bool | None = None,
        check_finite: bool = True,
    ) -> None:
        if isinstance(normalize, Mapping):
            normalize = Normalizer(**normalize)
        self.normalizer: Normalizer | None = Normalizer() if normalize is True else (normalize or None)
        self.buffer = buffer
        self.schedule = schedule
        self.total_steps = int(total_steps)
        self.logger = logger
        self.seed = seed
        self.log_interval = int(log_interval)
        self.eval_freq = int(eval_freq)
        self.eval_episodes = int(eval_episodes)
        self.callbacks = list(callbacks)
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.checkpoint_freq = int(checkpoint_freq)
        self.last_checkpoint: Path | None = None  # the last good checkpoint: a NonFiniteError leaves it untouched
        self.guard = FiniteGuard(check_finite, lambda: (self.env_steps, self.last_checkpoint))
        self._warned_weights = [False]
        self.gatherer = Gatherer(env, seed=seed, stats_window=stats_window)
        self.evaluator = Evaluator(eval_env, seed) if eval_env is not None else None
        self.num_envs = self.gatherer.num_envs
        self.actor = Actor(agent, self.normalizer, self.num_envs, 0 if self.evaluator is None else 1)
        self._hook_episodes()
        self._check_schedule()
        self.reset_counters()

    @property
    def agent(self) -> Agent:
        return self.actor.agent

    @agent.setter
    def agent(self, agent: Agent) -> None:  # the policy state stays: update_agent() is the way to swap agents
        self.actor.agent = agent

    @property
    def eval_gatherer(self) -> Gatherer | None:
        return None if self.evaluator is None else self.evaluator.gatherer

    @property
    def check_finite(self) -> bool:
        return self.guard.enabled

    @property
    def policy_state(self) -> Tree | None:
        """The training envs' recurrent policy state (``None`` for a stateless agent)."""
        return self.actor.state

    def reset_policy_state(self) -> None:
        self.actor.reset_state()

    # ---------------------------------------------------------------------------------------------- checks
    def _check_schedule(self) -> None:
        """Refuse option combinations that cannot work; warn about legal but surprising ones."""
        check_schedule(self)

    # ---------------------------------------------------------------------------------------------- state
    def reset_counters(self) -> None:
        self.updates = 0
        self.iterations = 0  # runner.step() calls: SB3's time/iterations (rollouts, on-policy)
        self.loop = LoopState(
            next_log=self.log_interval,
            next_eval=self.eval_freq if self.eval_freq > 0 else math.inf,
            next_ckpt=self.checkpoint_freq if self.checkpoint_freq > 0 else math.inf,
            run_start_steps=self.env_steps,
        )
        self.last_eval: dict[str, float] = {}
        self.last_eval_episodes: tuple[list[float], list[int]] = ([], [])
        self.best_eval_reward = -math.inf  # best eval/mean_reward so far: best.ckpt holds that runner

    @property
    def env_steps(self) -> int:
        """Transitions collected so far (all envs together)."""
        return self.gatherer.stats.env_steps

    @property
    def counts_updates(self) -> bool:
        """Whether the schedule's clock is gradient updates (offline: ``clock = "updates"``) rather than env steps."""
        return getattr(self.schedule, "clock", "env_steps") == "updates"

    @property
    def steps(self) -> int:
        """The runner's clock, which ``total_steps``, ``log_interval``, ``eval_freq`` and ``checkpoint_freq``
        count: env steps, or gradient updates for an offline schedule."""
        return self.updates if self.counts_updates else self.env_steps

    def reset(self) -> None:
        """Start afresh with the same agent: reset the envs, empty the buffer, zero counters and statistics.

        The env-step counter restarts at 0; the agent's and buffer's step-driven schedules (target syncs,
        epsilon, learning rates, PER beta) follow it through ``on_progress``, and per-episode exploration noise
        restarts through ``on_episode_end`` (every env starts a new episode).
        """
        self.gatherer = Gatherer(self.gatherer.env, seed=self.seed, stats_window=self.gatherer.stats.window)
        self._hook_episodes()
        self.buffer.clear()
        if self.normalizer is not None:  # the statistics stay (the agent learnt on them); running returns restart
            self.normalizer.returns = None
        self.reset_counters()
        self.actor.reset_state()
        on_episode_end = getattr(self.agent, "on_episode_end", None)
        if on_episode_end is not None:
            on_episode_end(np.ones(self.num_envs, dtype=bool))

    def update_agent(self, agent: Agent) -> None:
        """Swap in another agent (e.g. one loaded from disk); the buffer and counters are kept."""
        self.actor.agent = agent
        self._check_schedule()
        self.actor.reset_state()

    def _hook_episodes(self) -> None:
        """Route the training gatherer's finished episodes to the callbacks that have ``on_episode``."""
        hooks = [cb.on_episode for cb in self.callbacks if hasattr(cb, "on_episode")]
        if not hooks:
            return

        def on_episode(env: int, episode_return: float, length: int) -> None:
            for hook in hooks:
                hook(self, env, episode_return, length)

        self.gatherer.on_episode = on_episode

    # ---------------------------------------------------------------------------------------------- for schedules
    def _progress(self) -> None:  # before every training vector step
        # Schedules (epsilon, learning rate, target syncs, PER beta) are functions of env steps.
        for part in (self.agent, self.buffer):
            on_progress = getattr(part, "on_progress", None)
            if on_progress is not None:
                on_progress(self.env_steps, self.total_steps)

    def collect(
        self,
        steps: int | None = None,
        *,
        random_until: int = 0,
        until: Until | None = None,
        store_normalized: bool = False,
    ) -> Tally:
        """Training-env vector steps into the buffer through the one collection path (``Gatherer.collect``):
        before every step the schedules advance (``on_progress``); the policy acts (uniform-random actions while
        ``env_steps < random_until``, e.g. off-policy warm-up); episode ends reach the agent (``on_episode_end``)
        and its recurrent state. With a normaliser its statistics take in the observations about to be acted on
        (before the agent sees them, as VecNormalize) and each step's discounted returns.

        Args:
            steps: vector steps at most (``None``: until ``until`` says stop).
            random_until: uniform-random actions below this many env steps.
            until: stop conditions (a rollout's rows per stream, episodes, the run's end).
            store_normalized: store what the agent saw (an on-policy rollout); else raw transitions (replay: a
                normaliser applies to each sampled batch, :meth:`normalized`).
        """
        progress = any(hasattr(part, "on_progress") for part in (self.agent, self.buffer))
        return self.gatherer.collect(
            self.buffer,
            steps,
            self.actor.policy(explore=True),
            random_until=random_until,
            until=until,
            before_step=self._progress if progress else None,
            before_act=self.actor.before_act(),
            hooks=self.actor.hooks(store_normalized=store_normalized),
        )

    def normalized(self, batch: Any) -> Any:
        """A transition batch (or rollout) as the agent must see it: observations and rewards normalised with the
        current statistics (``cardio/envs/normalize.py``); unchanged without a normaliser."""
        return batch if self.normalizer is None else self.normalizer.normalize_batch(batch)

    def learn(self, batch: Any, indices: np.ndarray | None = None) -> dict[str, Any]:
        """One ``agent.update`` on ``batch``; replay priorities of ``indices`` follow its ``td_error``; the
        metrics are accumulated for the next log and returned. With ``check_finite`` a non-finite batch field or
        metric stops the run (:class:`~cardio.finite.NonFiniteError`)."""
        self.guard.batch(batch)
        metrics = self.agent.update(batch)
        self.guard.update(metrics, self.agent)
        td_error = metrics.pop("td_error", None)
        if td_error is not None and indices is not None and hasattr(self.buffer, "update_priorities"):
            self.buffer.update_priorities(indices, td_error)
        for key, value in metrics.items():
            self.loop.add(key, float(value))
        self.updates += 1
        return metrics

    def vector_steps_left(self, limit: int) -> int:
        """Vector steps the next rollout or collection phase takes: ``limit``, cut short at the end of the run so
        ``total_steps`` is what runs (PPO with 16 envs x 1024 steps asked for 2e4 used to run 32,768). A
        ``step()`` called past ``total_steps`` (by hand) takes the full ``limit``.

        Args:
            limit: the schedule's own length in vector steps (``train_freq``, ``n_steps``).
        """
        left = self.total_steps - self.env_steps
        return min(limit, math.ceil(left / self.num_envs)) if left > 0 else limit

    # ---------------------------------------------------------------------------------------------- the loop
    def step(self) -> None:
        """One unit of training as the schedule defines it (off-policy: ``train_freq`` vector steps and the
        updates they earn; on-policy: one rollout and its update)."""
        self.iterations += 1
        self.schedule.step(self)

    def evaluate(self, episodes: int | None = None) -> dict[str, float]:
        """Deterministic-policy returns on the eval env (``cardio/evaluation.py``): ``eval/mean_reward``, ``std``,
        ``iqm``, ``mean_ep_length``; ``last_eval_episodes`` keeps the episodes' ``(returns, lengths)``."""
        if self.evaluator is None:
            raise ScheduleError("evaluate() needs an eval_env; pass one to the Runner")
        episodes = self.eval_episodes if episodes is None else episodes
        metrics, self.last_eval_episodes = self.evaluator.evaluate(self.actor, episodes)
        self.last_eval = metrics
        self.loop.last_eval_step = self.steps
        return metrics

    def log_now(self) -> dict[str, float]:
        """Assemble ``rollout/* train/* time/*`` metrics, hand them to the logger, and return them."""
        elapsed = time.perf_counter() - self.loop.run_started
        metrics = {
            **self.gatherer.stats.metrics(),
            **self.loop.train_means(),
            "train/n_updates": float(self.updates),
            "time/fps": (self.env_steps - self.loop.run_start_steps) / max(elapsed, 1e-9),
            "time/time_elapsed": elapsed,
            "time/total_timesteps": float(self.env_steps),
        }
        if isinstance(self.schedule, OnPolicySchedule):  # SB3 counts rollouts for on-policy algorithms only
            metrics["time/iterations"] = float(self.iterations)
        if self.logger is not None:
            self.logger.log(metrics, self.steps)
        self.loop.last_log_step = self.steps
        return metrics

    def _eval_and_report(self) -> dict[str, float]:
        metrics = self.evaluate()
        if self.logger is not None:
            self.logger.log(metrics, self.steps)
        if metrics["eval/mean_reward"] > self.best_eval_reward:  # NaN never wins
            self.best_eval_reward = metrics["eval/mean_reward"]
            if self.checkpoint_dir is not None:
                self.guard.parameters(self.agent)  # a diverged agent is never written as the best one
                self.save(self.checkpoint_dir / checkpoint.BEST_NAME)
        for cb in self.callbacks:
            if hasattr(cb, "on_eval"):
                cb.on_eval(self, metrics)
        return metrics

    def run(self, total_steps: int | None = None) -> dict[str, float]:
        """Train until ``total_steps`` env steps, logging and evaluating on schedule; returns the final eval
        metrics (or the last logged metrics when there is no eval env).

        Raises:
            checkpoint.Interrupted: SIGINT/SIGTERM arrived; a checkpoint was written first (with a
                ``checkpoint_dir``) and the caller should close the logger and exit with ``exc.exit_code``.
        """
        if total_steps is not None:
            self.total_steps = int(total_steps)
        if self.logger is not None:
            self.logger.start(self.total_steps, self.steps)
        with checkpoint.stop_on_signal() as stop:
            while self.steps < self.total_steps:
                self.step()
                self.after_step()
                if stop.signum is not None:  # checkpoint at this step boundary, then leave
                    path = None
                    if self.checkpoint_dir is not None:
                        path = self.write_checkpoint()
                    raise checkpoint.Interrupted(stop.signum, path)
        return self.finish()

    def after_step(self) -> None:
        """The bookkeeping :meth:`run` does after each :meth:`step`: the log, evaluation and checkpoint that are
        due, the callbacks' ``on_step_end`` and the logger's progress (cardio/multiseed.py calls it per seed)."""
        loop = self.loop
        if self.steps >= loop.next_log:
            self.guard.parameters(self.agent)
            self.log_now()
            loop.next_log = (self.steps // self.log_interval + 1) * self.log_interval
        if self.evaluator is not None and self.steps >= loop.next_eval:
            self._eval_and_report()
            loop.next_eval = (self.steps // self.eval_freq + 1) * self.eval_freq
        if self.checkpoint_dir is not None and self.steps >= loop.next_ckpt:
            self.write_checkpoint()
            loop.next_ckpt = (self.steps // self.checkpoint_freq + 1) * self.checkpoint_freq
        for cb in self.callbacks:
            if hasattr(cb, "on_step_end"):
                cb.on_step_end(self)
        if self.logger is not None:
            self.logger.progress(self.steps)

    def finish(self) -> dict[str, float]:
        """The end of :meth:`run`: a last log, the final evaluation and the final checkpoint; returns the final
        eval metrics (or the last logged metrics when there is no eval env)."""
        final = self.log_now() if self.loop.last_log_step != self.steps else {}
        if self.evaluator is not None:
            # The periodic evaluation may have just run at this very step; do not repeat it.
            final = self.last_eval if self.loop.last_eval_step == self.steps else self._eval_and_report()
        if self.checkpoint_dir is not None:
            self.write_checkpoint()
        return final

    # ---------------------------------------------------------------------------------------------- persistence
    def meta(self) -> dict[str, Any]:
        """What a checkpoint must match to load into this runner (``cardio/persistence.py``)."""
        return persistence.runner_meta(self)

    def state_dict(self) -> dict[str, Any]:
        """Everything to continue exactly (``cardio/persistence.py``)."""
        return persistence.runner_state(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`, all or nothing (``cardio/persistence.py``).

        Raises:
            checkpoint.CheckpointError: the state is foreign, of another version, or built for another
                agent/env/space/buffer (the message lists every difference).
        """
        persistence.load_runner_state(self, state)
        for cb in self.callbacks:
            if hasattr(cb, "on_load"):
                cb.on_load(self)

    def write_checkpoint(self) -> Path:
        """``last.ckpt`` and ``weights.npz`` in ``checkpoint_dir``, once the parameters are checked finite, so a
        diverged agent never overwrites the last good checkpoint."""
        assert self.checkpoint_dir is not None, "write_checkpoint() needs a checkpoint_dir"
        self.guard.parameters(self.agent)
        self.last_checkpoint = persistence.write_run_files(self, self.checkpoint_dir, self._warned_weights)
        return self.last_checkpoint

    def save(self, path: str | Path) -> Path:
        """Write a checkpoint atomically (temporary file, then rename)."""
        return checkpoint.atomic_save(self.state_dict(), path)

    def load(self, path: str | Path) -> None:
        """Restore from :meth:`save` (a file, or a run dir holding ``last.ckpt``); a corrupt, foreign or
        mismatched file raises ``CheckpointError`` naming the problem, changing nothing."""
        path = checkpoint.resolve(path)
        state = checkpoint.load(path, kind="cardio.runner")
        try:
            persistence.check_runner_state(self, state, path)
        except checkpoint.CheckpointError as exc:
            raise checkpoint.CheckpointError(f"{path}: {exc}") from exc
        self.load_state_dict(state)
        self.last_checkpoint = path

    def close(self) -> None:
        """Close the training and evaluation envs and the callbacks' open files (``monitor.csv``): a sweep trial's
        or a multirun job's, before the next one in the same process builds its own. Should the runner run again
        (its envs still usable), ``monitor.csv`` is reopened and appended to."""
        self.gatherer.env.close()
        if self.evaluator is not None:
            self.evaluator.close()
        for cb in self.callbacks:
            close = getattr(cb, "close", None)
            if close is not None:
                close()

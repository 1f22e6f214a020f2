"""Runner: drives env -> gatherer -> buffer -> agent.update -> logger, off-policy and on-policy alike.

Counting follows SB3 so rl-zoo hyperparameters carry over unchanged: ``env_steps`` counts transitions (one
vector step of N envs is N env steps); ``train_freq`` counts vector steps; ``learning_starts``,
``total_steps``, ``log_interval``, ``eval_freq`` and the agent's own intervals count env steps. An offline
schedule (``clock = "updates"``) never steps the training env: its intervals count gradient updates (``steps``).

The runner keeps the loop, evaluation and persistence. When to collect and when to learn is its schedule's
business (``cardio/schedules/``: off-policy, on-policy, offline), which calls back :meth:`Runner.collect` and
:meth:`Runner.learn`. torch is imported only when something already uses it (a torch agent): a JAX run never
pays for it.
"""

from __future__ import annotations

import copy
import math
import random
import sys
import time
import warnings
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import gymnasium as gym
import numpy as np

from cardio import checkpoint, finite
from cardio.agents.base import Agent
from cardio.buffers.circular import CircularBuffer
from cardio.envs.normalize import NORMALIZER_NAME, Normalizer
from cardio.errors import ConfigError
from cardio.gatherer import Gatherer
from cardio.loggers.base import Logger
from cardio.pytree import Tree, tree_map
from cardio.schedules import OfflineSchedule, OffPolicySchedule, OnPolicySchedule, Schedule
from cardio.weights import WEIGHTS_NAME, WeightsError, save_weights

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

EVAL_SEED_OFFSET = 1_000_003
"""The eval env is seeded with ``seed + EVAL_SEED_OFFSET``, so it never replays the training episodes."""


class Callback(Protocol):
    """Hooks into a run; every method is optional. Raising from a hook stops the run (e.g. Optuna pruning).

    ``on_episode(runner, env, episode_return, length)`` hears of every finished training episode (the env's own
    return); ``on_eval`` gets the metrics, and ``runner.last_eval_episodes`` holds that evaluation's
    per-episode ``(returns, lengths)``; ``on_load`` hears that the runner was restored from a checkpoint.
    """

    def on_step_end(self, runner: Runner) -> None: ...

    def on_eval(self, runner: Runner, metrics: dict[str, float]) -> None: ...

    def on_episode(self, runner: Runner, env: int, episode_return: float, length: int) -> None: ...

    def on_load(self, runner: Runner) -> None: ...


class ScheduleError(ConfigError):
    """Runner options that cannot work together; the message names the keys and their values."""


def global_rng_state() -> dict[str, Any]:
    """Python's, numpy's and (when a torch agent has loaded it) torch's global RNG states."""
    state: dict[str, Any] = {"python": random.getstate(), "numpy": np.random.get_state()}
    if "torch" in sys.modules:  # never import torch for this: a JAX run must not pay for it
        state["torch"] = sys.modules["torch"].get_rng_state()
    return state


def set_global_rng_state(state: dict[str, Any]) -> None:
    """Restore :func:`global_rng_state`; torch's only when the checkpoint holds it."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if state.get("torch") is not None:
        import torch

        torch.set_rng_state(state["torch"])


def iqm(values: Sequence[float]) -> float:
    """Interquartile mean: the mean of the middle 50 % (Agarwal et al. 2021), robust to outlier episodes."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    cut = len(x) // 4
    return float(x[cut : len(x) - cut].mean()) if len(x) else float("nan")


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
        self.agent = agent
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
        self.check_finite = bool(check_finite)
        self.last_checkpoint: Path | None = None  # the last good checkpoint: a NonFiniteError leaves it untouched
        self._warned_weights = False
        self.gatherer = Gatherer(env, seed=seed, stats_window=stats_window)
        eval_seed = None if seed is None else seed + EVAL_SEED_OFFSET
        self.eval_gatherer = Gatherer(eval_env, seed=eval_seed) if eval_env is not None else None
        self.num_envs = self.gatherer.num_envs
        self._hook_episodes()
        self._check_schedule()
        self.reset_counters()
        self.reset_policy_state()

    # ---------------------------------------------------------------------------------------------- checks
    def _check_schedule(self) -> None:
        """Refuse option combinations that cannot work; warn about legal but surprising ones."""
        if not isinstance(self.agent, Agent):
            raise ScheduleError(f"agent {type(self.agent).__name__} lacks act/update/state_dict/load_state_dict")
        # an offline buffer's streams are the dataset's episodes or segments, not env copies
        if self.buffer.num_envs != self.num_envs and not self.counts_updates:
            raise ScheduleError(
                f"buffer has num_envs={self.buffer.num_envs} but the env has {self.num_envs} (env.num_envs)"
            )
        if not isinstance(self.schedule, Schedule):
            raise ScheduleError(
                f"runner.schedule must be a schedule with check() and step() (cardio.schedules), got {self.schedule!r}"
            )
        chunk = self.schedule.check(self)
        if self.counts_updates:  # the offline clock: whole update phases
            if self.total_steps % chunk:
                actual = math.ceil(self.total_steps / chunk) * chunk
                warnings.warn(
                    f"runner.total_steps={self.total_steps} is not a multiple of the {chunk} updates one "
                    f"runner.step() makes; {actual} updates will run",
                    stacklevel=3,
                )
        # A schedule that collects cuts its last rollout / collection phase to the steps left (vector_steps_left),
        # so only a total that whole vector steps cannot hit runs over, by less than one vector step.
        elif self.total_steps % self.num_envs:
            actual = math.ceil(self.total_steps / self.num_envs) * self.num_envs
            warnings.warn(
                f"runner.total_steps={self.total_steps} is not a multiple of env.num_envs={self.num_envs} (one "
                f"vector step is {self.num_envs} env steps); {actual} env steps will run",
                stacklevel=3,
            )

    # ---------------------------------------------------------------------------------------------- state
    def reset_counters(self) -> None:
        self.updates = 0
        self.iterations = 0  # runner.step() calls: SB3's time/iterations (rollouts, on-policy)
        self._train_sums: dict[str, float] = defaultdict(float)
        self._train_counts: dict[str, int] = defaultdict(int)
        self._next_log = self.log_interval
        self._next_eval = self.eval_freq if self.eval_freq > 0 else math.inf
        self._next_ckpt = self.checkpoint_freq if self.checkpoint_freq > 0 else math.inf
        self._run_started = time.perf_counter()
        self._run_start_steps = self.env_steps
        self.last_eval: dict[str, float] = {}
        self.last_eval_episodes: tuple[list[float], list[int]] = ([], [])
        self.best_eval_reward = -math.inf  # best eval/mean_reward so far: best.ckpt holds that runner
        self._last_log_step = -1
        self._last_eval_step = -1

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
        self.reset_policy_state()
        on_episode_end = getattr(self.agent, "on_episode_end", None)
        if on_episode_end is not None:
            on_episode_end(np.ones(self.num_envs, dtype=bool))

    def update_agent(self, agent: Agent) -> None:
        """Swap in another agent (e.g. one loaded from disk); the buffer and counters are kept."""
        self.agent = agent
        self._check_schedule()
        self.reset_policy_state()

    def _hook_episodes(self) -> None:
        """Route the training gatherer's finished episodes to the callbacks that have ``on_episode``."""
        hooks = [cb.on_episode for cb in self.callbacks if hasattr(cb, "on_episode")]
        if not hooks:
            return

        def on_episode(env: int, episode_return: float, length: int) -> None:
            for hook in hooks:
                hook(self, env, episode_return, length)

        self.gatherer.on_episode = on_episode

    # ---------------------------------------------------------------------------------------------- recurrent state
    def reset_policy_state(self) -> None:
        """Fresh recurrent states for the training and eval envs, if the agent has ``initial_state``."""
        init = getattr(self.agent, "initial_state", None)
        self.policy_state: Tree | None = None if init is None else init(self.num_envs)
        self.eval_state: Tree | None = None if init is None or self.eval_gatherer is None else init(1)

    def _policy(self, explore: bool, evaluation: bool = False) -> Any:
        """``obs -> (action, extras)``; a stateful agent gets its state and hands back ``extras["next_state"]``."""
        norm = self.normalizer  # the agent sees normalised observations, frozen statistics in evaluation
        if self.policy_state is None:
            if norm is None:
                return lambda obs: self.agent.act(obs, explore=explore)
            return lambda obs: self.agent.act(norm.normalize_obs(obs), explore=explore)

        def act(obs: Tree) -> tuple[Any, dict[str, Any]]:
            state = self.eval_state if evaluation else self.policy_state
            obs = obs if norm is None else norm.normalize_obs(obs)
            action, extras = self.agent.act(obs, explore=explore, state=state)  # type: ignore[call-arg]
            setattr(self, "eval_state" if evaluation else "policy_state", extras.pop("next_state"))
            return action, extras

        return act

    def _end_episodes(self, transition: dict[str, Any], valid: np.ndarray, evaluation: bool = False) -> None:
        """Envs whose episode ended, and NEXT_STEP reset rows (``~valid``: the agent just acted on a stale final
        obs), start the next one fresh: the agent's ``on_episode_end`` hook hears of them (training envs only) and
        their recurrent state rows go back to ``initial_state``."""
        fresh_rows = ~valid | transition["terminated"] | transition["truncated"]  # [N]
        if fresh_rows.any():
            self._start_episodes(fresh_rows, evaluation)

    def _start_episodes(self, fresh_rows: np.ndarray, evaluation: bool = False) -> None:
        """The envs of ``fresh_rows [N]`` start a new episode: the agent's ``on_episode_end`` hears of them
        (training envs only) and their recurrent state rows go back to ``initial_state``."""
        on_episode_end = getattr(self.agent, "on_episode_end", None)
        if on_episode_end is not None and not evaluation:
            on_episode_end(fresh_rows)
        state = self.eval_state if evaluation else self.policy_state
        if state is None:
            return
        fresh = self.agent.initial_state(len(fresh_rows))  # type: ignore[attr-defined]
        state = tree_map(lambda s, f: np.where(fresh_rows.reshape(-1, *[1] * (np.ndim(s) - 1)), f, s), state, fresh)
        setattr(self, "eval_state" if evaluation else "policy_state", state)

    # ---------------------------------------------------------------------------------------------- training
    def _progress(self) -> None:  # called by collect() before every vector step
        # Schedules (epsilon, learning rate, target syncs, PER beta) are functions of env steps.
        for part in (self.agent, self.buffer):
            on_progress = getattr(part, "on_progress", None)
            if on_progress is not None:
                on_progress(self.env_steps, self.total_steps)

    def collect(self, random: bool = False) -> tuple[dict[str, Any], np.ndarray]:
        """One vector step of the training envs for a schedule: schedules advance (``on_progress``), the policy
        acts (uniform-random actions with ``random``, e.g. off-policy warm-up), episode ends reach the agent.
        With a normaliser its statistics take in the observations about to be acted on (before the agent sees
        them, as VecNormalize) and the step's discounted returns; the transition itself stays raw.

        Returns:
            ``(transition [N, ...], valid [N])`` from :meth:`Gatherer.step`; rows with ``valid=False`` are
            NEXT_STEP reset rows, not transitions.
        """
        self._progress()
        norm = self.normalizer
        if norm is not None:
            if self.gatherer.obs is None:
                self.gatherer.reset()
            norm.update_obs(self.gatherer.obs, ~self.gatherer.pending)  # NEXT_STEP reset rows hold a stale obs
        policy = self.gatherer.random_policy if random else self._policy(True)
        transition, valid = self.gatherer.step(policy)
        if norm is not None:
            norm.update_returns(transition["reward"], transition["terminated"] | transition["truncated"], valid)
        self._end_episodes(transition, valid)
        return transition, valid

    def collect_steps(self, steps: int, random_until: int = 0) -> tuple[int, int]:
        """``steps`` vector steps of the training envs straight into the buffer: the same as ``steps`` times
        ``buffer.add(*collect(random=env_steps < random_until))``, through :meth:`Gatherer.collect` (no
        transition dict or buffer write per step; ``bench/collection.py``). With a normaliser or a recurrent
        policy, whose state changes between steps, it is exactly that loop.

        Args:
            steps: vector steps to collect.
            random_until: uniform-random actions while ``env_steps`` is below this (off-policy warm-up).

        Returns:
            ``(transitions, episodes)`` collected (NEXT_STEP reset rows excluded).
        """
        if self.normalizer is not None or self.policy_state is not None:
            collected = episodes = 0
            for _ in range(steps):
                transition, valid = self.collect(random=self.env_steps < random_until)
                self.buffer.add(transition, valid)
                collected += int(valid.sum())
                episodes += int(((transition["terminated"] | transition["truncated"]) & valid).sum())
            return collected, episodes
        progress = any(hasattr(part, "on_progress") for part in (self.agent, self.buffer))
        return self.gatherer.collect(
            self.buffer,
            steps,
            self._policy(True),
            random_until=random_until,
            before_step=self._progress if progress else None,  # schedules advance before every vector step
            on_fresh=getattr(self.agent, "on_episode_end", None),  # as collect's _end_episodes tells the agent
        )

    def normalized(self, batch: Any) -> Any:
        """A transition batch (or rollout) as the agent must see it: observations and rewards normalised with the
        current statistics (``cardio/envs/normalize.py``); unchanged without a normaliser."""
        return batch if self.normalizer is None else self.normalizer.normalize_batch(batch)

    def learn(self, batch: Any, indices: np.ndarray | None = None) -> dict[str, Any]:
        """One ``agent.update`` on ``batch``; replay priorities of ``indices`` follow its ``td_error``; the
        metrics are accumulated for the next log and returned. With ``check_finite`` a non-finite batch field or
        metric stops the run (:class:`~cardio.finite.NonFiniteError`)."""
        if self.check_finite:
            self._guard(finite.bad_field(batch))
        metrics = self.agent.update(batch)
        if self.check_finite and (bad := finite.bad_metric(metrics)) is not None:
            weights_bad = finite.bad_parameter(self.agent)
            self._guard(f"{bad} ({weights_bad or 'parameters still finite'})")
        td_error = metrics.pop("td_error", None)
        if td_error is not None and indices is not None and hasattr(self.buffer, "update_priorities"):
            self.buffer.update_priorities(indices, td_error)
        for key, value in metrics.items():
            self._train_sums[key] += float(value)
            self._train_counts[key] += 1
        self.updates += 1
        return metrics

    def step(self) -> None:
        """One unit of training as the schedule defines it (off-policy: ``train_freq`` vector steps and the
        updates they earn; on-policy: one rollout and its update)."""
        self.iterations += 1
        self.schedule.step(self)

    def vector_steps_left(self, limit: int) -> int:
        """Vector steps the next rollout or collection phase takes: ``limit``, cut short at the end of the run so
        ``total_steps`` is what runs (PPO with 16 envs x 1024 steps asked for 2e4 used to run 32,768). A
        ``step()`` called past ``total_steps`` (by hand) takes the full ``limit``.

        Args:
            limit: the schedule's own length in vector steps (``train_freq``, ``n_steps``).
        """
        left = self.total_steps - self.env_steps
        return min(limit, math.ceil(left / self.num_envs)) if left > 0 else limit

    def _guard(self, bad: str | None) -> None:
        """Raise :class:`~cardio.finite.NonFiniteError` naming ``bad`` and the env step (``None``: all finite)."""
        if bad is not None:
            raise finite.NonFiniteError(
                bad, self.env_steps, None if self.last_checkpoint is None else str(self.last_checkpoint)
            )

    def _guard_parameters(self) -> None:
        if self.check_finite:
            self._guard(finite.bad_parameter(self.agent))

    # ---------------------------------------------------------------------------------------------- evaluation
    def evaluate(self, episodes: int | None = None) -> dict[str, float]:
        """Deterministic-policy returns on the eval env: ``eval/mean_reward``, ``std``, ``iqm``, ``mean_ep_length``.

        Each of the eval env's N copies runs its share of the episodes, so short episodes are not favoured.
        Returns are the env's own (see ``cardio.gatherer``): reward wrappers in ``env.wrappers`` do not change them.
        """
        if self.eval_gatherer is None:
            raise ScheduleError("evaluate() needs an eval_env; pass one to the Runner")
        episodes = self.eval_episodes if episodes is None else episodes
        if int(episodes) != episodes or episodes < 1:  # 0 was read as "the default"; below 0 gave NaN metrics
            raise ScheduleError(f"evaluate(episodes={episodes!r}): the number of episodes must be a positive integer")
        g = self.eval_gatherer
        g.reset()
        if self.eval_state is not None:
            self.eval_state = self.agent.initial_state(g.num_envs)  # type: ignore[attr-defined]
        n = g.num_envs
        quota = np.array([episodes // n + (i < episodes % n) for i in range(n)])
        returns: list[float] = []
        lengths: list[int] = []
        done_count = np.zeros(n, dtype=np.int64)
        while bool(np.any(done_count < quota)):
            transition, valid = g.step(self._policy(False, evaluation=True))
            self._end_episodes(transition, valid, evaluation=True)
            for i, episode_return, length in g.finished:
                if done_count[i] < quota[i]:
                    returns.append(episode_return)
                    lengths.append(length)
                done_count[i] += 1
        metrics = {
            "eval/mean_reward": float(np.mean(returns)),
            "eval/std_reward": float(np.std(returns)),
            "eval/iqm_reward": iqm(returns),
            "eval/mean_ep_length": float(np.mean(lengths)),
        }
        self.last_eval = metrics
        self.last_eval_episodes = (returns, lengths)
        self._last_eval_step = self.steps
        return metrics

    # ---------------------------------------------------------------------------------------------- the loop
    def _train_metrics(self) -> dict[str, float]:
        out = {k: self._train_sums[k] / self._train_counts[k] for k in self._train_sums}
        self._train_sums.clear()
        self._train_counts.clear()
        return out

    def log_now(self) -> dict[str, float]:
        """Assemble ``rollout/* train/* time/*`` metrics, hand them to the logger, and return them."""
        elapsed = time.perf_counter() - self._run_started
        metrics = {
            **self.gatherer.stats.metrics(),
            **self._train_metrics(),
            "train/n_updates": float(self.updates),
            "time/fps": (self.env_steps - self._run_start_steps) / max(elapsed, 1e-9),
            "time/time_elapsed": elapsed,
            "time/total_timesteps": float(self.env_steps),
        }
        if isinstance(self.schedule, OnPolicySchedule):  # SB3 counts rollouts for on-policy algorithms only
            metrics["time/iterations"] = float(self.iterations)
        if self.logger is not None:
            self.logger.log(metrics, self.steps)
        self._last_log_step = self.steps
        return metrics

    def _eval_and_report(self) -> dict[str, float]:
        metrics = self.evaluate()
        if self.logger is not None:
            self.logger.log(metrics, self.steps)
        if metrics["eval/mean_reward"] > self.best_eval_reward:  # NaN never wins
            self.best_eval_reward = metrics["eval/mean_reward"]
            if self.checkpoint_dir is not None:
                self._guard_parameters()  # a diverged agent is never written as the best one
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
        if self.steps >= self._next_log:
            self._guard_parameters()
            self.log_now()
            self._next_log = (self.steps // self.log_interval + 1) * self.log_interval
        if self.eval_gatherer is not None and self.steps >= self._next_eval:
            self._eval_and_report()
            self._next_eval = (self.steps // self.eval_freq + 1) * self.eval_freq
        if self.checkpoint_dir is not None and self.steps >= self._next_ckpt:
            self.write_checkpoint()
            self._next_ckpt = (self.steps // self.checkpoint_freq + 1) * self.checkpoint_freq
        for cb in self.callbacks:
            if hasattr(cb, "on_step_end"):
                cb.on_step_end(self)
        if self.logger is not None:
            self.logger.progress(self.steps)

    def finish(self) -> dict[str, float]:
        """The end of :meth:`run`: a last log, the final evaluation and the final checkpoint; returns the final
        eval metrics (or the last logged metrics when there is no eval env)."""
        final = self.log_now() if self._last_log_step != self.steps else {}
        if self.eval_gatherer is not None:
            # The periodic evaluation may have just run at this very step; do not repeat it.
            final = self.last_eval if self._last_eval_step == self.steps else self._eval_and_report()
        if self.checkpoint_dir is not None:
            self.write_checkpoint()
        return final

    # ---------------------------------------------------------------------------------------------- persistence
    def meta(self) -> dict[str, Any]:
        """What a checkpoint must match to load into this runner: agent class, env, spaces, buffer, schedule."""
        env = self.gatherer.env
        try:
            env_id = env.get_attr("spec")[0].id  # type: ignore[attr-defined]
        except Exception:
            env_id = None
        return {
            "agent": type(self.agent).__qualname__,
            "env_id": env_id,
            "num_envs": self.num_envs,
            "observation_space": str(env.single_observation_space),
            "action_space": str(env.single_action_space),
            "buffer": type(self.buffer).__qualname__,
            "buffer_capacity": self.buffer.capacity,
            "schedule": type(self.schedule).__qualname__,
        }

    @staticmethod
    def _gatherer_state(g: Gatherer) -> dict[str, Any]:
        return {
            "obs": copy.deepcopy(g.obs),
            "pending": g.pending.copy(),
            "ep_return": g.ep_return.copy(),
            "ep_length": g.ep_length.copy(),
            "stats": copy.deepcopy(g.stats),
            "env": checkpoint.env_state(g.env),
        }

    @staticmethod
    def _load_gatherer_state(g: Gatherer, saved: dict[str, Any], name: str) -> bool:
        """Put a gatherer back as saved; returns whether its env had to be reset instead (state not saved)."""
        g.pending, g.ep_return, g.ep_length, g.stats = (
            saved["pending"].copy(),
            saved["ep_return"].copy(),
            saved["ep_length"].copy(),
            copy.deepcopy(saved["stats"]),
        )
        g.obs = None
        if saved["obs"] is None:
            return False
        if saved["env"] is not None:
            checkpoint.load_env_state(g.env, saved["env"])
            g.obs = copy.deepcopy(saved["obs"])
            return False
        # The env's state was not saved (ALE, Box2D, MuJoCo): restart its episodes, drop the partial ones from the
        # statistics. The seed follows the run's seed and step, so a resume neither replays the run's first
        # episodes nor differs between two resumes of the same checkpoint.
        cut = (
            "end there, truncated in the buffer (no return reads across the cut)"
            if name == "training"
            else "are dropped"
        )
        warnings.warn(
            f"the {name} env ({type(g.env).__name__}) state was not saved in the checkpoint, so it is reset: its "
            f"unfinished episodes {cut}; the resumed run is correct but not bit-identical to an uninterrupted one "
            f"(docs/checkpoints.md)",
            stacklevel=3,
        )
        restart = None if g.seed is None else np.random.SeedSequence([g.seed, g.stats.env_steps])
        g.reset(seed=None if restart is None else int(restart.generate_state(1)[0] % 2**31))
        return True

    def state_dict(self) -> dict[str, Any]:
        """Everything to continue exactly: agent, buffer, counters, both gatherers with their envs (where they
        pickle), global RNG states and the logger's step. ``kind``, ``version`` and :meth:`meta` identify it."""
        return {
            "kind": "cardio.runner",
            "version": checkpoint.FORMAT_VERSION,
            "meta": self.meta(),
            "agent": self.agent.state_dict(),
            "buffer": self.buffer.state_dict(),
            "updates": self.updates,
            "total_steps": self.total_steps,
            "counters": {
                "next_log": self._next_log,
                "next_eval": self._next_eval,
                "next_ckpt": self._next_ckpt,
                "last_log_step": self._last_log_step,
                "last_eval_step": self._last_eval_step,
                "last_eval": dict(self.last_eval),
                "train_sums": dict(self._train_sums),
                "train_counts": dict(self._train_counts),
                "run_start_steps": self._run_start_steps,
                "iterations": self.iterations,
                "best_eval_reward": self.best_eval_reward,
                "elapsed": time.perf_counter() - self._run_started,
            },
            "gatherer": self._gatherer_state(self.gatherer),
            "eval_gatherer": None if self.eval_gatherer is None else self._gatherer_state(self.eval_gatherer),
            # recurrent agents: the hidden state the next act() continues from (None for stateless agents)
            "policy_state": {"train": self.policy_state, "eval": self.eval_state},
            "rng": global_rng_state(),
            "logger": None if self.logger is None else self.logger.state_dict(),
            "normalizer": None if self.normalizer is None else self.normalizer.state_dict(),
        }

    def _check_state(self, state: dict[str, Any], path: str | Path | None = None) -> None:
        """Validate a whole checkpoint against this runner before anything is changed."""
        if state.get("kind") != "cardio.runner" or state.get("version") != checkpoint.FORMAT_VERSION:
            raise checkpoint.CheckpointError(
                f"not a cardio.runner checkpoint of version {checkpoint.FORMAT_VERSION} "
                f"(kind={state.get('kind')!r}, version={state.get('version')!r})"
            )
        checkpoint.check_meta(state.get("meta", {}), self.meta(), path)
        checkpoint.check_structure(state["agent"], self.agent.state_dict(), "agent")
        if (state.get("normalizer") is None) != (self.normalizer is None):
            raise checkpoint.CheckpointError(
                f"checkpoint and runner disagree on runner.normalize (checkpoint: "
                f"{'on' if state.get('normalizer') is not None else 'off'}, runner: "
                f"{'on' if self.normalizer is not None else 'off'})"
            )
        if (state["eval_gatherer"] is None) != (self.eval_gatherer is None):
            raise checkpoint.CheckpointError("checkpoint and runner disagree on having an eval env (eval_env)")
        for key in ("buffer", "updates", "total_steps", "counters", "gatherer", "policy_state", "rng"):
            if key not in state:
                raise checkpoint.CheckpointError(f"checkpoint lacks its {key!r} entry; the file is incomplete")

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`, all or nothing: the state is validated first, and if applying it
        still fails the runner is rolled back to where it was.

        Raises:
            checkpoint.CheckpointError: the state is foreign, of another version, or built for another
                agent/env/space/buffer (the message lists every difference).
        """
        self._check_state(state)
        # The buffer's storage is replaced, never written in place, on load: a reference is backup enough.
        backup = {k: v if k == "buffer" else copy.deepcopy(v) for k, v in self.state_dict().items() if k != "logger"}
        try:
            self._apply_state(state)
        except Exception as exc:
            self._apply_state(backup)
            raise checkpoint.CheckpointError(f"checkpoint could not be applied, runner left unchanged: {exc}") from exc
        if self.logger is not None and state.get("logger") is not None:
            self.logger.load_state_dict(state["logger"])
        for cb in self.callbacks:
            if hasattr(cb, "on_load"):
                cb.on_load(self)

    def _apply_state(self, state: dict[str, Any]) -> None:
        self.agent.load_state_dict(state["agent"])
        self.buffer.load_state_dict(state["buffer"])
        self.updates = state["updates"]
        self.total_steps = state["total_steps"]
        c = state["counters"]
        self._next_log, self._next_eval, self._next_ckpt = c["next_log"], c["next_eval"], c["next_ckpt"]
        self._last_log_step, self._last_eval_step = c["last_log_step"], c["last_eval_step"]
        self.last_eval = dict(c["last_eval"])
        self._train_sums = defaultdict(float, c["train_sums"])
        self._train_counts = defaultdict(int, c["train_counts"])
        self._run_start_steps = c["run_start_steps"]
        self.iterations = c.get("iterations", 0)
        self.best_eval_reward = c.get("best_eval_reward", -math.inf)
        self._run_started = time.perf_counter() - c["elapsed"]
        reset = self._load_gatherer_state(self.gatherer, state["gatherer"], "training")
        self.policy_state, self.eval_state = state["policy_state"]["train"], state["policy_state"]["eval"]
        if reset:  # new episodes in every training env: the stored ones end at the cut, the policy starts afresh
            self.buffer.truncate_streams()
            self._start_episodes(np.ones(self.num_envs, dtype=bool))
        if self.eval_gatherer is not None and state["eval_gatherer"] is not None:
            self._load_gatherer_state(self.eval_gatherer, state["eval_gatherer"], "eval")
        if self.normalizer is not None and state.get("normalizer") is not None:
            self.normalizer.load_state_dict(state["normalizer"])
            if reset:  # the running discounted returns belonged to the cut episodes
                self.normalizer.returns = None
        set_global_rng_state(state["rng"])

    def write_checkpoint(self) -> Path:
        """``last.ckpt`` (everything, pickled: for resuming) and ``weights.npz`` (the agent as plain arrays: safe
        to share and evaluate, ``cardio/weights.py``) in ``checkpoint_dir``, once the parameters are checked
        finite, so a diverged agent never overwrites the last good checkpoint."""
        assert self.checkpoint_dir is not None, "write_checkpoint() needs a checkpoint_dir"
        self._guard_parameters()
        path = self.save(self.checkpoint_dir / checkpoint.CHECKPOINT_NAME)
        try:
            save_weights(self.agent, self.checkpoint_dir / WEIGHTS_NAME, meta={"env_steps": self.env_steps})
            if self.normalizer is not None:  # the weights act on normalised observations: their statistics too
                self.normalizer.save(self.checkpoint_dir / NORMALIZER_NAME)
        except WeightsError as exc:  # a custom agent whose state is not plain arrays: last.ckpt still resumes it
            if not self._warned_weights:
                warnings.warn(f"{WEIGHTS_NAME} not written: {exc}", stacklevel=2)
                self._warned_weights = True
        self.last_checkpoint = path
        return path

    def close(self) -> None:
        """Close the training and evaluation envs and the callbacks' open files (``monitor.csv``): a sweep trial's
        or a multirun job's, before the next one in the same process builds its own. Should the runner run again
        (its envs still usable), ``monitor.csv`` is reopened and appended to."""
        for gatherer in (self.gatherer, self.eval_gatherer):
            if gatherer is not None:
                gatherer.env.close()
        for cb in self.callbacks:
            close = getattr(cb, "close", None)
            if close is not None:
                close()

    def save(self, path: str | Path) -> Path:
        """Write a checkpoint atomically (temporary file, then rename)."""
        return checkpoint.atomic_save(self.state_dict(), path)

    def load(self, path: str | Path) -> None:
        """Restore from :meth:`save` (a file, or a run dir holding ``last.ckpt``); a corrupt, foreign or
        mismatched file raises ``CheckpointError`` naming the problem, changing nothing."""
        path = checkpoint.resolve(path)
        state = checkpoint.load(path, kind="cardio.runner")
        try:
            self._check_state(state, path)
        except checkpoint.CheckpointError as exc:
            raise checkpoint.CheckpointError(f"{path}: {exc}") from exc
        self.load_state_dict(state)
        self.last_checkpoint = path

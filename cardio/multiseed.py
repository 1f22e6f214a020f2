"""Many seeds in one process: S independent runs whose updates are batched over the seed axis with ``jax.vmap``.

``python scripts/train.py agent=dqn_jax env=CartPole seeds=[0,1,2,3,4]`` builds one ordinary :class:`Runner` per
seed, exactly as ``seed=s`` would (its own env copies, eval env, replay buffer, logger and run dir
``<run_dir>/seed_<s>/``), and drives them in lockstep. What is shared is only the work:

- **acting**: the S agents' policies run as one vmapped, jitted call on the ``[S, N, ...]`` observations;
- **learning**: each seed samples its own batches from its own buffer; the phase's ``G`` updates of all S seeds
  run as one jitted ``lax.scan`` over ``G`` of a ``vmap`` over S.

Seed s therefore sees exactly the env streams, replay samples and PRNG draws of a single-seed run with seed s
(tests/test_multiseed.py checks the streams and that the parameters match within float tolerance: a vmapped
matmul may sum in another order). Each seed dir holds what a single-seed run writes (``config.yaml`` with its
seed, ``progress.csv``, ``metrics.jsonl``, ``last.ckpt``, ``weights.npz``) plus ``final.json``, and the run dir
gets ``summary.csv`` (mean, std, min, max over seeds; ``cardio/commands/train.py`` writes it), so ``make plot
runs=<run_dir>`` and the multirun summary read S runs. A seed's ``last.ckpt`` is a single-seed checkpoint:
``resume=<run_dir>/seed_<s>`` continues that seed alone; ``resume=<run_dir>`` (:meth:`MultiSeedRunner.load`)
resumes all S together.

What cannot be batched is refused with :class:`MultiSeedError` naming the way out (``seed=0,1,2 -m``): torch
agents (no pure functions to vmap), on-policy and recurrent agents, prioritized replay (priorities change
between updates), observation normalisation and episode-counted phases (``train_freq_unit=episode``), and envs
whose autoreset mode lets seeds drift apart in env steps (``env.autoreset=next_step``).
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode
from omegaconf import DictConfig, open_dict

from cardio import checkpoint
from cardio.errors import ConfigError
from cardio.gatherer import collect_lockstep
from cardio.pytree import tree_map
from cardio.runner import Runner
from cardio.schedules import OffPolicySchedule


class MultiSeedError(ConfigError):
    """A run that cannot be batched over seeds; the message names why and what to run instead."""


def _refuse(why: str) -> MultiSeedError:
    return MultiSeedError(
        f"seeds=[...] cannot batch this run: {why}; run the seeds as separate jobs instead: "
        f"python scripts/train.py -m seed=0,1,2,... (same overrides)"
    )


class SeedStack:
    """S agents of one JAX class with their states stacked on a leading seed axis, and their pure functions
    vmapped over it. The first agent is kept as the template: its Python-side schedules (epsilon, target syncs)
    are the same for every seed, since the seeds move in lockstep.

    Args:
        agents: one freshly built agent per seed (each from its own seed, as a single-seed run builds it).
    """

    def __init__(self, agents: Sequence[Any]) -> None:
        import jax
        import jax.numpy as jnp

        self.agent = agents[0]
        self.num_seeds = len(agents)
        self.agent.state = jax.tree.map(lambda *x: jnp.stack(x), *[a.state for a in agents])
        _, shared = self.agent.policy_args()
        no_axis = (None,) * len(shared)
        explore = partial(self.agent.act_fn, explore=True)  # bound first: vmap would map a keyword along axis 0
        self._act = jax.jit(jax.vmap(explore, in_axes=(0, 0, 0, *no_axis)))
        update = jax.vmap(self.agent.update_fn, in_axes=(0, 0, *(None,) * len(self.agent.update_args())))

        def phase(state: Any, batches: Any, *shared: Any) -> tuple[Any, Any]:
            def one(state: Any, batch: Any) -> tuple[Any, Any]:
                state, metrics, _ = update(state, batch, *shared)
                return state, metrics

            return jax.lax.scan(one, state, batches)

        self._phase = jax.jit(phase)

        def act_one(policy: Any, keys: Any, index: Any, obs: Any, *shared: Any, explore: bool) -> tuple[Any, Any]:
            # one seed alone (evaluation): its slice of the policy and its key, the new key written back
            one = jax.tree.map(lambda x: x[index], policy)
            action, key = self.agent.act_fn(one, keys[index], obs, *shared, explore=explore)
            return action, keys.at[index].set(key)

        self._act_one = jax.jit(act_one, static_argnames="explore")

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Exploring actions ``[S, N, ...]`` for the seeds' observations ``[S, N, ...]``."""
        policy, shared = self.agent.policy_args()
        action, key = self._act(policy, self.agent.state.key, obs.astype(np.float32), *shared)
        self.agent.state = self.agent.state._replace(key=key)
        return np.stack([self.agent.env_action(a, obs.shape[1]) for a in np.asarray(action)])

    def learn(self, batches: dict[str, np.ndarray]) -> np.ndarray:
        """All seeds' updates of one phase on ``[G, S, B, ...]`` batches; returns the metrics ``[G, S, M]``."""
        self.agent.state, metrics = self._phase(self.agent.state, batches, *self.agent.update_args())
        return np.asarray(metrics)

    def view(self, index: int) -> Any:
        """Seed ``index``'s agent for its runner: it evaluates, saves and loads that seed's slice; its class
        name is the agent's, so its checkpoints are those of a single-seed run."""
        cls = type(type(self.agent).__name__, (SeedView,), {"__qualname__": type(self.agent).__qualname__})
        return cls(self, index)


class SeedView:
    """One seed of a :class:`SeedStack`, meeting the Agent contract for that seed's :class:`Runner`."""

    def __init__(self, stack: SeedStack, index: int) -> None:
        self.stack, self.index = stack, index
        self.config = stack.agent.config

    def _swap(self, state: Any) -> Any:
        agent, previous = self.stack.agent, self.stack.agent.state
        agent.state = state
        return previous

    def _slice(self) -> Any:
        return tree_map(lambda x: x[self.index], self.stack.agent.state)

    def _write_back(self, single: Any, stacked: Any) -> Any:
        import jax

        return jax.tree.map(lambda s, x: s.at[self.index].set(x), stacked, single)

    def act(self, obs: Any, explore: bool) -> tuple[np.ndarray, dict[str, Any]]:
        """This seed's policy alone (evaluation): its slice of the parameters and its own key, in one jitted call
        that writes back only the key (writing back the whole state per step would cost far more)."""
        agent = self.stack.agent
        policy, shared = agent.policy_args()
        obs = np.asarray(obs, np.float32)
        action, keys = self.stack._act_one(policy, agent.state.key, self.index, obs, *shared, explore=explore)
        agent.state = agent.state._replace(key=keys)
        return agent.env_action(action, len(obs)), {}

    def on_progress(self, env_steps: int, total_steps: int) -> None:
        on_progress = getattr(self.stack.agent, "on_progress", None)
        if on_progress is not None:  # the same env steps for every seed: calling it once per seed is idempotent
            on_progress(env_steps, total_steps)

    def update(self, batch: Any) -> dict[str, Any]:
        raise MultiSeedError("a seed of a multi-seed run learns through MultiSeedRunner.step, not Runner.step")

    def state_dict(self) -> dict[str, Any]:
        """This seed's agent state, as the single-seed agent's ``state_dict``."""
        stacked = self._swap(self._slice())
        try:
            return self.stack.agent.state_dict()
        finally:
            self._swap(stacked)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Put a single-seed agent state into this seed's slice."""
        stacked = self._swap(self._slice())
        try:
            self.stack.agent.load_state_dict(state)
            single = self.stack.agent.state
        finally:
            self._swap(stacked)
        self.stack.agent.state = self._write_back(single, stacked)


def check_batchable(runners: Sequence[Runner]) -> None:
    """Refuse, with :class:`MultiSeedError`, runs whose seeds cannot move in lockstep through batched calls."""
    first = runners[0]
    agent = first.agent
    if not isinstance(first.schedule, OffPolicySchedule):
        raise _refuse(f"agent {type(agent).__name__} is on-policy; only off-policy JAX agents are batched")
    if not all(hasattr(agent, name) for name in ("act_fn", "update_fn", "policy_args", "update_args")):
        raise _refuse(
            f"agent {type(agent).__name__} has no pure functions to vmap (torch agents are not batched; the JAX "
            f"twins dqn_jax and sac_jax are)"
        )
    if hasattr(agent, "initial_state"):
        raise _refuse(f"agent {type(agent).__name__} is recurrent")
    if hasattr(first.buffer, "update_priorities"):
        raise _refuse("prioritized replay updates priorities between updates, so a phase cannot be one call")
    if first.schedule.train_freq_unit != "step":
        raise _refuse(
            f"runner.schedule.train_freq_unit={first.schedule.train_freq_unit!r} ends phases on episodes, which the "
            f"seeds finish at different steps; use train_freq_unit=step"
        )
    if first.normalizer is not None:
        raise _refuse("runner.normalize keeps statistics per seed that the batched collection does not update")
    if first.gatherer.mode != AutoresetMode.SAME_STEP:
        raise _refuse(
            f"env autoreset mode {first.gatherer.mode.name} skips reset steps, so the seeds would drift apart in "
            f"env steps; use env.autoreset=same_step"
        )


class MultiSeedRunner:
    """Trains S runners, one per seed, in lockstep with batched acting and learning (module docstring).

    Args:
        runners: one :class:`Runner` per seed, built as single-seed runs (their agents are replaced by views of
            one :class:`SeedStack`).
        seeds: the seeds, for ``final.json`` and messages.
    """

    def __init__(self, runners: Sequence[Runner], seeds: Sequence[int]) -> None:
        check_batchable(runners)
        self.runners = list(runners)
        self.seeds = list(seeds)
        self.schedule: OffPolicySchedule = runners[0].schedule  # type: ignore[assignment]
        self.stack = SeedStack([r.agent for r in runners])
        for i, runner in enumerate(self.runners):
            runner.agent = self.stack.view(i)

    @property
    def env_steps(self) -> int:
        steps = {r.env_steps for r in self.runners}
        if len(steps) != 1:  # guarded against by check_batchable; this would be a bug
            raise AssertionError(f"seeds out of lockstep: env steps {sorted(steps)}")
        return steps.pop()

    def _progress(self) -> None:
        for r in self.runners:
            r._progress()  # schedules first, as Runner.collect advances them

    def _act(self, obs: list[Any]) -> np.ndarray:
        return self.stack.act(np.stack([np.asarray(o) for o in obs]))  # [S, N, ...]: one row per seed

    def step(self) -> None:
        """One :meth:`OffPolicySchedule.step` for all seeds at once: its phase length, warm-up and updates due
        (asked of the first seed: the seeds are in lockstep, so every seed gets the same answers). The phase is
        collected through the one collection path, every seed's gatherer stepping in lockstep with the seeds'
        actions from one vmapped policy call per vector step (``cardio.gatherer.collect_lockstep``)."""
        s, first = self.schedule, self.runners[0]
        for r in self.runners:
            r.iterations += 1  # Runner.step's count
        phase = first.vector_steps_left(s.train_freq)
        random_until = 0 if getattr(first.agent, "act_at_warmup", False) else s.learning_starts  # as warming_up
        tallies = collect_lockstep(
            [r.gatherer for r in self.runners],
            [r.buffer for r in self.runners],
            phase,
            self._act,
            random_until=random_until,
            before_step=self._progress,
        )
        n_updates = s.updates_due(first, tallies[0].written, phase)
        if n_updates == 0:
            return
        samples = [r.buffer.sample(s.batch_size, num_batches=n_updates)[0] for r in self.runners]
        for r, sample in zip(self.runners, samples, strict=True):
            r.guard.batch(sample)  # as Runner.learn checks each batch
        batches = tree_map(lambda *x: np.stack(x, axis=1), *samples)  # [G, S, B, ...]
        from cardio.agents.jax.networks import replay_batch

        metrics = self.stack.learn(replay_batch(batches))  # [G, S, M]
        names = self.stack.agent.metric_names
        extra = self.stack.agent.extra_metrics()
        for i, r in enumerate(self.runners):
            if r.check_finite and not np.isfinite(metrics[:, i]).all():
                bad = names[int(np.flatnonzero(~np.isfinite(metrics[:, i]).all(axis=0))[0])]
                r.guard.found(f"metric {bad}")
            sums = metrics[:, i].sum(axis=0)
            for key, value in zip(names, sums.tolist(), strict=True):
                r.loop.add(key, value, n_updates)
            for key, value in extra.items():
                r.loop.add(key, value * n_updates, n_updates)
            r.updates += n_updates

    def run(self) -> list[dict[str, float]]:
        """Train every seed to its ``total_steps``, logging, evaluating and checkpointing each on its own
        schedule as :meth:`Runner.run` does; returns each seed's final eval metrics."""
        for r in self.runners:
            if r.logger is not None:
                r.logger.start(r.total_steps, r.env_steps)
        total = self.runners[0].total_steps
        with checkpoint.stop_on_signal() as stop:
            while self.env_steps < total:
                self.step()
                for r in self.runners:
                    r.after_step()
                if stop.signum is not None:  # every seed checkpoints at this step boundary, then leave
                    paths = [r.write_checkpoint() for r in self.runners if r.checkpoint_dir is not None]
                    raise checkpoint.Interrupted(stop.signum, paths[0] if paths else None)
        return [r.finish() for r in self.runners]

    def load(self, run_dir: str | Path) -> None:
        """Resume every seed from ``<run_dir>/seed_<s>/last.ckpt``."""
        for seed, r in zip(self.seeds, self.runners, strict=True):
            r.load(Path(run_dir) / seed_dir_name(seed))


# ------------------------------------------------------------------------------------------------ configs, run dirs
def seed_dir_name(seed: int) -> str:
    """The sub-run dir of one seed: ``seed_3``."""
    return f"seed_{seed}"


def seed_configs(cfg: DictConfig) -> list[DictConfig]:
    """One single-seed config per entry of ``cfg.seeds``: ``seed`` set, ``seeds`` cleared, ``run_dir`` the seed's
    sub-dir, so each is exactly what ``seed=s run_dir=<run_dir>/seed_<s>`` would run.

    Raises:
        MultiSeedError: ``seeds`` is empty or repeats a seed.
    """
    seeds = [int(s) for s in cfg.seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise MultiSeedError(f"seeds={seeds}: give distinct seeds, e.g. seeds=[0,1,2,3,4]")
    out = []
    for seed in seeds:
        one = copy.deepcopy(cfg)
        with open_dict(one):
            one.seed = seed
            one.seeds = None
            one.run_dir = str(Path(str(cfg.run_dir)) / seed_dir_name(seed))
        out.append(one)
    return out


def write_finals(run_dir: str | Path, seeds: Sequence[int], finals: Sequence[dict[str, float]]) -> None:
    """Each seed's ``final.json``, as a multirun job writes it (the caller summarises the run dir over seeds)."""
    run_dir = Path(run_dir)
    for seed, final in zip(seeds, finals, strict=True):
        value = final.get("eval/mean_reward", math.nan)
        record = {"overrides": [f"seed={seed}"], "status": "COMPLETED", "value": float(value)}
        (run_dir / seed_dir_name(seed) / "final.json").write_text(json.dumps(record, indent=1))

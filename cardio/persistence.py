"""A runner as a checkpoint and back: what is saved, how a saved state is checked, and how it is applied.

A runner checkpoint (``last.ckpt``, ``best.ckpt``) is one pickled dict, ``kind = "cardio.runner"`` and
``version = checkpoint.FORMAT_VERSION``: the agent's and buffer's ``state_dict``, the loop's counters, both
gatherers (observation, reset rows, running episode sums, statistics and, where it pickles, the env itself),
the recurrent policy states, Python's / numpy's / torch's global RNG states, the logger's step and the
normaliser's statistics. ``meta`` (agent class, env id, spaces, env count, buffer, schedule) must match the runner
that loads it, or loading names every difference and changes nothing (``cardio/checkpoint.py``). Loading is all
or nothing: a state that fails half-way is rolled back. Files are written atomically (``checkpoint.atomic_save``).

An env whose state was not saved (ALE, Box2D, MuJoCo) is reset on load: its unfinished episodes end there,
``truncated`` in the buffer, and the restart is seeded from the run's seed and env step (docs/checkpoints.md).
"""

from __future__ import annotations

import copy
import math
import random
import sys
import time
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from cardio import checkpoint
from cardio.envs.normalize import NORMALIZER_NAME
from cardio.gatherer import Gatherer
from cardio.weights import WEIGHTS_NAME, WeightsError, save_weights


class Runner(Protocol):
    """What a checkpoint holds of a runner (:class:`cardio.runner.Runner` is one)."""

    agent: Any
    buffer: Any
    schedule: Any
    actor: Any  # cardio.acting.Actor: the recurrent policy states
    loop: Any  # cardio.runner.LoopState: when the next log, evaluation and checkpoint are due
    gatherer: Gatherer
    logger: Any
    normalizer: Any
    updates: int
    total_steps: int
    iterations: int
    best_eval_reward: float
    last_eval: dict[str, float]
    num_envs: int

    @property
    def eval_gatherer(self) -> Gatherer | None: ...

    @property
    def env_steps(self) -> int: ...

    def meta(self) -> dict[str, Any]: ...


KEYS = ("buffer", "updates", "total_steps", "counters", "gatherer", "policy_state", "rng")
"""Entries a runner checkpoint must have (besides kind, version, meta and agent)."""


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


def gatherer_state(g: Gatherer) -> dict[str, Any]:
    return {
        "obs": copy.deepcopy(g.obs),
        "pending": g.pending.copy(),
        "ep_return": g.ep_return.copy(),
        "ep_length": g.ep_length.copy(),
        "stats": copy.deepcopy(g.stats),
        "env": checkpoint.env_state(g.env),
    }


def load_gatherer_state(g: Gatherer, saved: dict[str, Any], name: str) -> bool:
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
    cut = "end there, truncated in the buffer (no return reads across the cut)" if name == "training" else "are dropped"
    warnings.warn(
        f"the {name} env ({type(g.env).__name__}) state was not saved in the checkpoint, so it is reset: its "
        f"unfinished episodes {cut}; the resumed run is correct but not bit-identical to an uninterrupted one "
        f"(docs/checkpoints.md)",
        stacklevel=4,
    )
    restart = None if g.seed is None else np.random.SeedSequence([g.seed, g.stats.env_steps])
    g.reset(seed=None if restart is None else int(restart.generate_state(1)[0] % 2**31))
    return True


def runner_meta(r: Runner) -> dict[str, Any]:
    """What a checkpoint must match to load into runner ``r``: agent class, env, spaces, buffer, schedule."""
    env = r.gatherer.env
    try:
        env_id = env.get_attr("spec")[0].id  # type: ignore[attr-defined]
    except Exception:
        env_id = None
    return {
        "agent": type(r.agent).__qualname__,
        "env_id": env_id,
        "num_envs": r.num_envs,
        "observation_space": str(env.single_observation_space),
        "action_space": str(env.single_action_space),
        "buffer": type(r.buffer).__qualname__,
        "buffer_capacity": r.buffer.capacity,
        "schedule": type(r.schedule).__qualname__,
    }


def runner_state(r: Runner) -> dict[str, Any]:
    """Everything to continue exactly (see the module docstring)."""
    loop = r.loop
    return {
        "kind": "cardio.runner",
        "version": checkpoint.FORMAT_VERSION,
        "meta": r.meta(),
        "agent": r.agent.state_dict(),
        "buffer": r.buffer.state_dict(),
        "updates": r.updates,
        "total_steps": r.total_steps,
        "counters": {
            "next_log": loop.next_log,
            "next_eval": loop.next_eval,
            "next_ckpt": loop.next_ckpt,
            "last_log_step": loop.last_log_step,
            "last_eval_step": loop.last_eval_step,
            "last_eval": dict(r.last_eval),
            "train_sums": dict(loop.train_sums),
            "train_counts": dict(loop.train_counts),
            "run_start_steps": loop.run_start_steps,
            "iterations": r.iterations,
            "best_eval_reward": r.best_eval_reward,
            "elapsed": time.perf_counter() - loop.run_started,
        },
        "gatherer": gatherer_state(r.gatherer),
        "eval_gatherer": None if r.eval_gatherer is None else gatherer_state(r.eval_gatherer),
        # recurrent agents: the hidden state the next act() continues from (None for stateless agents)
        "policy_state": {"train": r.actor.state, "eval": r.actor.eval_state},
        "rng": global_rng_state(),
        "logger": None if r.logger is None else r.logger.state_dict(),
        "normalizer": None if r.normalizer is None else r.normalizer.state_dict(),
    }


def check_runner_state(r: Runner, state: dict[str, Any], path: str | Path | None = None) -> None:
    """Validate a whole checkpoint against this runner before anything is changed.

    Raises:
        checkpoint.CheckpointError: foreign, of another version, incomplete, or built for another
            agent/env/space/buffer/normaliser/eval env (the message lists every difference).
    """
    if state.get("kind") != "cardio.runner" or state.get("version") != checkpoint.FORMAT_VERSION:
        raise checkpoint.CheckpointError(
            f"not a cardio.runner checkpoint of version {checkpoint.FORMAT_VERSION} "
            f"(kind={state.get('kind')!r}, version={state.get('version')!r})"
        )
    checkpoint.check_meta(state.get("meta", {}), r.meta(), path)
    checkpoint.check_structure(state["agent"], r.agent.state_dict(), "agent")
    if (state.get("normalizer") is None) != (r.normalizer is None):
        raise checkpoint.CheckpointError(
            f"checkpoint and runner disagree on runner.normalize (checkpoint: "
            f"{'on' if state.get('normalizer') is not None else 'off'}, runner: "
            f"{'on' if r.normalizer is not None else 'off'})"
        )
    if (state["eval_gatherer"] is None) != (r.eval_gatherer is None):
        raise checkpoint.CheckpointError("checkpoint and runner disagree on having an eval env (eval_env)")
    for key in KEYS:
        if key not in state:
            raise checkpoint.CheckpointError(f"checkpoint lacks its {key!r} entry; the file is incomplete")


def apply_runner_state(r: Runner, state: dict[str, Any]) -> None:
    """Put a checked state into the runner (the logger's state aside: :meth:`Runner.load_state_dict` does it)."""
    r.agent.load_state_dict(state["agent"])
    r.buffer.load_state_dict(state["buffer"])
    r.updates = state["updates"]
    r.total_steps = state["total_steps"]
    c, loop = state["counters"], r.loop
    loop.next_log, loop.next_eval, loop.next_ckpt = c["next_log"], c["next_eval"], c["next_ckpt"]
    loop.last_log_step, loop.last_eval_step = c["last_log_step"], c["last_eval_step"]
    r.last_eval = dict(c["last_eval"])
    loop.train_sums = defaultdict(float, c["train_sums"])
    loop.train_counts = defaultdict(int, c["train_counts"])
    loop.run_start_steps = c["run_start_steps"]
    r.iterations = c.get("iterations", 0)
    r.best_eval_reward = c.get("best_eval_reward", -math.inf)
    loop.run_started = time.perf_counter() - c["elapsed"]
    reset = load_gatherer_state(r.gatherer, state["gatherer"], "training")
    r.actor.state, r.actor.eval_state = state["policy_state"]["train"], state["policy_state"]["eval"]
    if reset:  # new episodes in every training env: the stored ones end at the cut, the policy starts afresh
        r.buffer.truncate_streams()
        r.actor.start_episodes(np.ones(r.num_envs, dtype=bool))
    if r.eval_gatherer is not None and state["eval_gatherer"] is not None:
        load_gatherer_state(r.eval_gatherer, state["eval_gatherer"], "eval")
    if r.normalizer is not None and state.get("normalizer") is not None:
        r.normalizer.load_state_dict(state["normalizer"])
        if reset:  # the running discounted returns belonged to the cut episodes
            r.normalizer.returns = None
    set_global_rng_state(state["rng"])


def load_runner_state(r: Runner, state: dict[str, Any]) -> None:
    """:func:`apply_runner_state`, all or nothing: if applying a checked state still fails, the runner is rolled
    back to where it was and :class:`~cardio.checkpoint.CheckpointError` says why."""
    check_runner_state(r, state)
    # The buffer's storage is replaced, never written in place, on load: a reference is backup enough.
    backup = {k: v if k == "buffer" else copy.deepcopy(v) for k, v in runner_state(r).items() if k != "logger"}
    try:
        apply_runner_state(r, state)
    except Exception as exc:
        apply_runner_state(r, backup)
        raise checkpoint.CheckpointError(f"checkpoint could not be applied, runner left unchanged: {exc}") from exc
    if r.logger is not None and state.get("logger") is not None:
        r.logger.load_state_dict(state["logger"])


def write_run_files(r: Runner, directory: Path, warned: list[bool]) -> Path:
    """``last.ckpt`` (everything, pickled: for resuming) and ``weights.npz`` (the agent as plain arrays: safe to
    share and evaluate, ``cardio/weights.py``) in ``directory``, plus the normaliser's statistics; returns the
    checkpoint's path. A custom agent whose state is not plain arrays gets one warning (``warned``) and its
    ``last.ckpt`` still resumes it."""
    path = checkpoint.atomic_save(runner_state(r), directory / checkpoint.CHECKPOINT_NAME)
    try:
        save_weights(r.agent, directory / WEIGHTS_NAME, meta={"env_steps": r.env_steps})
        if r.normalizer is not None:  # the weights act on normalised observations: their statistics too
            r.normalizer.save(directory / NORMALIZER_NAME)
    except WeightsError as exc:
        if not warned[0]:
            warnings.warn(f"{WEIGHTS_NAME} not written: {exc}", stacklevel=3)
            warned[0] = True
    return path

"""Shared builders for the buffer tests: transitions whose every number is known by construction."""

from __future__ import annotations

import numpy as np

from tests.cases.nstep import NStepCase


def step_batch(i: int, reward: float, end: str, num_envs: int = 1, env_offset: float = 0.0) -> dict[str, np.ndarray]:
    """Step ``i`` of the case convention (tests/cases/nstep.py), repeated over ``num_envs`` envs.

    Env e's obs is ``[i, 0] + [0, 0]`` plus ``env_offset * e`` in the first coordinate, so streams are told apart.
    """
    envs = np.arange(num_envs, dtype=np.float32) * env_offset
    obs = np.stack([np.full(num_envs, i, np.float32) + envs, np.zeros(num_envs, np.float32)], axis=1)
    nxt = obs + np.array([1.0, 1.0 if end else 0.0], np.float32)
    return {
        "obs": obs,
        "action": np.full(num_envs, i % 3, np.int64),
        "reward": np.full(num_envs, reward, np.float32),
        "next_obs": nxt,
        "terminated": np.full(num_envs, end == "term"),
        "truncated": np.full(num_envs, end == "trunc"),
    }


def write_case(buffer, case: NStepCase, num_envs: int = 1, reference=None) -> None:  # type: ignore[no-untyped-def]
    for i, (reward, end) in enumerate(zip(case.rewards, case.ends, strict=True)):
        batch = step_batch(i, reward, end, num_envs, env_offset=100.0)
        buffer.add(batch)
        if reference is not None:
            reference.add(batch)


def flat_of_step(step: int, env: int, num_envs: int, capacity: int) -> int:
    """Flat index of a case step written by ``write_case`` (no masked rows)."""
    return (step % (capacity // num_envs)) * num_envs + env

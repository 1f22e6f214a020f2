"""Observation wrappers for partially observable variants of classic tasks.

``MaskVelocity`` hides the velocity entries of an observation, so a memoryless policy can no longer tell which
way the system moves and an agent needs memory (DRQN's GRU) or frame stacking to act well. Use it from an env
config's ``wrappers`` list, e.g. ``configs/env/CartPoleNoVel.yaml``.
"""

from __future__ import annotations

from collections.abc import Sequence

import gymnasium as gym
import numpy as np

POSITION_INDICES: dict[str, tuple[int, ...]] = {
    "CartPole": (0, 2),  # cart position, pole angle (hides cart velocity, pole angular velocity)
    "Pendulum": (0, 1),  # cos(theta), sin(theta) (hides angular velocity)
    "MountainCar": (0,),  # position (hides velocity)
    "Acrobot": (0, 1, 2, 3),  # cos/sin of both joint angles (hides both angular velocities)
    "LunarLander": (0, 1, 4, 6, 7),  # x, y, angle, leg contacts (hides vx, vy, angular velocity)
    "LunarLanderContinuous": (0, 1, 4, 6, 7),
}
"""Observation entries kept per env family (the part of the id before ``-v``)."""


class MaskVelocity(gym.ObservationWrapper):
    """Keep only the position-like entries of a Box observation.

    Args:
        env: the env to wrap; its id's family (``"CartPole"`` for ``"CartPole-v1"``) picks the entries kept.
        keep: entries to keep, overriding the table (needed for envs not in :data:`POSITION_INDICES`).

    Raises:
        ValueError: the env is not in the table and ``keep`` is not given, or an index is out of range.
    """

    def __init__(self, env: gym.Env, keep: Sequence[int] | None = None) -> None:
        super().__init__(env)
        env_id = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
        family = env_id.split("/")[-1].split("-v")[0]
        if keep is None and family not in POSITION_INDICES:
            raise ValueError(
                f"MaskVelocity knows no velocity entries for env {env_id!r} (known: {sorted(POSITION_INDICES)}); "
                f"pass keep=[...] with the observation indices to keep"
            )
        space = env.observation_space
        if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
            raise ValueError(f"MaskVelocity needs a flat Box observation, env {env_id!r} has {space}")
        self.keep = np.asarray(keep if keep is not None else POSITION_INDICES[family], dtype=np.int64)
        if self.keep.size == 0 or self.keep.min() < 0 or self.keep.max() >= space.shape[0]:
            raise ValueError(f"MaskVelocity keep={self.keep.tolist()} is out of range for env {env_id!r} {space}")
        self.observation_space = gym.spaces.Box(space.low[self.keep], space.high[self.keep], dtype=space.dtype)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return observation[self.keep]


def cartpole_no_velocity(**kwargs: object) -> gym.Env:
    """``CartPoleNoVel-v1``'s entry point: CartPole-v1 (its kwargs pass through) with the velocities masked.

    Registered under its own id (as rl-baselines3-zoo does) so that anything keyed on the env id, the zoo
    hyperparameters and the run dir name among them, tells it apart from plain CartPole-v1.
    """
    from gymnasium.envs.classic_control.cartpole import CartPoleEnv

    return MaskVelocity(CartPoleEnv(**kwargs), keep=POSITION_INDICES["CartPole"])  # type: ignore[arg-type]

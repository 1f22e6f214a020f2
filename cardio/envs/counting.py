"""CountingEnv: a tiny deterministic env whose every number can be worked out by hand.

The observation is ``[episode, t]`` as float32: ``t`` counts steps within the episode (0 right after reset) and
``episode`` counts resets. A reset observation is therefore recognisable anywhere (``t == 0``), and a transition
``obs -> next_obs`` always has ``next_t == t + 1``. Rewards are ``rewards[t]`` (a constant or a per-step list),
so n-step returns and GAE come out as sums you can write down. The episode ends after ``length`` steps, by
termination or by truncation as asked. Shared by the buffer, gatherer, n-step and GAE tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import gymnasium as gym
import numpy as np


class CountingEnv(gym.Env[np.ndarray, np.int64]):
    """Deterministic counting env.

    Args:
        length: steps per episode (the episode ends on the ``length``-th step).
        end: ``"terminate"`` (a true terminal) or ``"truncate"`` (a time limit, bootstrap past it).
        rewards: reward of every step, or a per-step sequence indexed by ``t`` (the step's starting count).
        num_actions: size of the Discrete action space (actions are ignored).
    """

    metadata = {"render_modes": []}  # noqa: RUF012

    def __init__(
        self,
        length: int = 5,
        end: Literal["terminate", "truncate"] = "terminate",
        rewards: float | Sequence[float] = 1.0,
        num_actions: int = 2,
    ) -> None:
        if length <= 0:
            raise ValueError(f"CountingEnv length must be positive, got {length}")
        if end not in ("terminate", "truncate"):
            raise ValueError(f"CountingEnv end must be 'terminate' or 'truncate', got {end!r}")
        self.length = length
        self.end = end
        self.rewards = rewards
        self.observation_space = gym.spaces.Box(0.0, np.inf, shape=(2,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(num_actions)
        self.episode = -1
        self.t = 0

    def _obs(self) -> np.ndarray:
        return np.array([self.episode, self.t], dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.episode += 1
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        rewards = self.rewards
        reward = float(rewards if np.isscalar(rewards) else rewards[self.t])  # type: ignore[index,arg-type]
        self.t += 1
        done = self.t >= self.length
        return self._obs(), reward, done and self.end == "terminate", done and self.end == "truncate", {}

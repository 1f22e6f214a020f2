"""NestedDictEnv: a tiny env with a nested Dict observation (an image, a Discrete, a Box and a Tuple), for the
multi-input torso's end-to-end tests.

Each step shows a goal in three places at once: the ``goal`` Discrete under ``sensors``, a lit row band in the
``camera`` image (``[H, W, C]`` uint8, as gymnasium renders) and the ``position`` Box. A Discrete-action agent
earns 1 for choosing the goal and 0 otherwise; a Box-action agent earns ``-(action - position)^2``, where
``position`` is the goal mapped to [-1, 1]. The ``extras`` Tuple carries a step counter and noise. The episode
terminates after ``length`` steps, so the best return is ``length`` (Discrete) or 0 (Box), and a uniform
policy's is ``length / num_goals`` (Discrete).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np


class NestedDictEnv(gym.Env[dict[str, Any], Any]):
    """Guess the goal shown in a nested Dict observation.

    Args:
        continuous: Box actions in [-1, 1] (SAC) instead of Discrete ones (DQN, PPO).
        num_goals: number of goals (and of Discrete actions).
        length: steps per episode (the episode terminates on the ``length``-th step).
        image_size: side of the square ``camera`` image; 36 is the Nature-CNN's smallest input.
    """

    metadata = {"render_modes": []}  # noqa: RUF012

    def __init__(self, continuous: bool = False, num_goals: int = 3, length: int = 8, image_size: int = 36) -> None:
        if num_goals < 2 or length < 1 or image_size < num_goals:
            raise ValueError(
                f"NestedDictEnv needs num_goals >= 2, length >= 1 and image_size >= num_goals, "
                f"got num_goals={num_goals}, length={length}, image_size={image_size}"
            )
        self.num_goals, self.length, self.image_size = num_goals, length, image_size
        self.observation_space = gym.spaces.Dict(
            {
                "camera": gym.spaces.Box(0, 255, (image_size, image_size, 1), np.uint8),
                "sensors": gym.spaces.Dict(
                    {
                        "goal": gym.spaces.Discrete(num_goals),
                        "position": gym.spaces.Box(-1.0, 1.0, (1,), np.float32),
                        "extras": gym.spaces.Tuple(
                            (gym.spaces.Discrete(length + 1), gym.spaces.Box(-1.0, 1.0, (2,), np.float32))
                        ),
                    }
                ),
            }
        )
        self.action_space: gym.Space = (
            gym.spaces.Box(-1.0, 1.0, (1,), np.float32) if continuous else gym.spaces.Discrete(num_goals)
        )
        self.t = 0
        self.goal = 0

    def _position(self) -> float:
        return 2.0 * self.goal / (self.num_goals - 1) - 1.0

    def _obs(self) -> dict[str, Any]:
        camera = np.zeros((self.image_size, self.image_size, 1), np.uint8)
        band = self.image_size // self.num_goals
        camera[self.goal * band : (self.goal + 1) * band] = 255
        noise = self.np_random.uniform(-1.0, 1.0, 2).astype(np.float32)
        return {
            "camera": camera,
            "sensors": {
                "goal": np.int64(self.goal),
                "position": np.array([self._position()], np.float32),
                "extras": (np.int64(self.t), noise),
            },
        }

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.t = 0
        self.goal = int(self.np_random.integers(self.num_goals))
        return self._obs(), {}

    def step(self, action):
        if isinstance(self.action_space, gym.spaces.Discrete):
            reward = float(int(action) == self.goal)
        else:
            reward = -float((float(np.asarray(action).reshape(-1)[0]) - self._position()) ** 2)
        self.t += 1
        self.goal = int(self.np_random.integers(self.num_goals))
        return self._obs(), reward, self.t >= self.length, False, {}

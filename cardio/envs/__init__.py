"""Environments: the vector-env factory and the tiny test envs cardio ships."""

import gymnasium as gym

from cardio.envs.counting import CountingEnv
from cardio.envs.factory import make_env, make_single_env

if "cardio/Counting-v0" not in gym.registry:
    gym.register("cardio/Counting-v0", entry_point="cardio.envs.counting:CountingEnv")

__all__ = ["CountingEnv", "make_env", "make_single_env"]

"""Environments: the vector-env factory and the tiny test envs cardio ships."""

import gymnasium as gym

from cardio.envs.counting import CountingEnv
from cardio.envs.factory import make_env, make_single_env
from cardio.envs.nested import NestedDictEnv

if "cardio/Counting-v0" not in gym.registry:
    gym.register("cardio/Counting-v0", entry_point="cardio.envs.counting:CountingEnv")
# CartPole-v1 with the velocities masked, under rl-baselines3-zoo's id (configs/env/CartPoleNoVel.yaml)
if "CartPoleNoVel-v1" not in gym.registry:
    gym.register(
        "CartPoleNoVel-v1",
        entry_point="cardio.envs.wrappers:cartpole_no_velocity",
        max_episode_steps=500,
        reward_threshold=475.0,
    )
if "cardio/NestedDict-v0" not in gym.registry:
    gym.register("cardio/NestedDict-v0", entry_point="cardio.envs.nested:NestedDictEnv")

__all__ = ["CountingEnv", "NestedDictEnv", "make_env", "make_single_env"]

"""DDPG: deterministic policy gradient with a replay buffer and target networks.

Lillicrap et al. 2016, "Continuous control with deep reinforcement learning" (arXiv:1509.02971). As in SB3, DDPG
is TD3 (``cardio/agents/td3.py``) with one critic, an actor step on every update and no target smoothing, so
this file holds only the knobs; the update and its metric names are :class:`~cardio.agents.td3.TD3`'s.
Defaults are SB3's DDPG defaults; the rl-zoo values per env live in ``configs/zoo/ddpg/<EnvId>.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import gymnasium as gym

from cardio.agents.td3 import TD3, TD3Config


@dataclass
class DDPGConfig:
    """DDPG hyperparameters; the same keys, in the same order, as ``configs/agent/ddpg.yaml``."""

    zoo_name: ClassVar[str] = "ddpg"
    """Tuned hyperparameters live in ``configs/zoo/ddpg/<EnvId>.yaml``."""
    observation_spaces: ClassVar[tuple[type[gym.Space], ...]] = (gym.spaces.Box,)
    """Observation spaces it takes."""
    action_spaces: ClassVar[tuple[type[gym.Space], ...]] = (gym.spaces.Box,)
    """Action spaces it takes."""

    lr: float = 1e-3
    """Adam learning rate of actor and critic (the initial one under a linear schedule)."""
    lr_schedule: str = "constant"
    """``constant`` or ``linear`` (decays to 0 at ``total_steps``, rl-zoo's ``lin_<lr>``)."""
    gamma: float = 0.99
    """Discount per env step (an n-step batch brings its own ``discount`` column instead)."""
    tau: float = 0.005
    """Polyak coefficient of the soft target updates made after every gradient step."""
    hidden_sizes: tuple[int, ...] = (400, 300)
    """Hidden widths of the actor, and of the critic unless ``qf_hidden_sizes``."""
    qf_hidden_sizes: tuple[int, ...] | None = None
    """The critic's own hidden widths (rl-zoo's ``net_arch: {pi: [...], qf: [...]}``); ``None``: as the actor's."""
    activation: str = "relu"
    """Activation between hidden layers: tanh, relu, elu or gelu (rl-zoo's ``activation_fn``)."""
    noise_type: str = "normal"
    """Exploration noise added to the actor's action: ``"normal"``, ``"ou"`` or ``"none"``."""
    noise_std: float = 0.1
    """Std (``"normal"``) or kick scale (``"ou"``) of the exploration noise, in normalised action units."""

    def build(
        self,
        observation_space: gym.Space,
        action_space: gym.Space,
        *,
        device: str = "cpu",
        seed: int | None = None,
        env_id: str | None = None,
    ) -> TD3:
        """A :class:`TD3` with one critic, no policy delay and no target smoothing (``SpaceError`` unless Box)."""
        td3 = TD3Config(
            lr=self.lr,
            lr_schedule=self.lr_schedule,
            gamma=self.gamma,
            tau=self.tau,
            hidden_sizes=self.hidden_sizes,
            qf_hidden_sizes=self.qf_hidden_sizes,
            activation=self.activation,
            n_critics=1,
            policy_delay=1,
            target_policy_noise=0.0,
            target_noise_clip=0.0,
            noise_type=self.noise_type,
            noise_std=self.noise_std,
        )
        return TD3(observation_space, action_space, td3, device=device, seed=seed, env_id=env_id, name="DDPG")

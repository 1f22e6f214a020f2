"""The knobs of the agents that have a torch and a JAX twin, and of A2C beside PPO's: pure dataclasses, no
framework imported.

``cardio/agents/dqn.py`` and ``cardio/agents/jax/dqn.py`` (likewise PPO and SAC) read the same config, so the
rl-zoo files and ``configs/agent/<algo>.yaml`` apply to both twins unchanged. ``agent_path`` names the torch agent
as ``module:Class``, imported only when it is built, so a JAX run never imports torch, composing a config imports
no framework, and this module imports no agent; a JAX twin subclasses the config and names its own agent. PPO and
A2C share :class:`ActorCriticConfig`'s knobs (SB3's names; A2C changes three defaults).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym

from cardio.agents.base import AgentConfig
from cardio.errors import ConfigError


def refuse_unsupported(config: Any, agent: str, keys: tuple[str, ...]) -> None:
    """A twin that lacks some knobs refuses a config that changes them, naming each, rather than dropping them
    silently (rl-zoo files set ``lr_schedule``, ``activation``, ``use_sde``...).

    Args:
        config: the agent config dataclass.
        agent: the agent's name for the message, e.g. ``"DQN (JAX)"``.
        keys: the fields this agent does not implement; each must keep its default.

    Raises:
        ConfigError: a listed field differs from its default (a user error: one line at the entry points).
    """
    defaults = {f.name: f.default for f in dataclasses.fields(config)}
    changed = [f"agent.{key}={getattr(config, key)!r}" for key in keys if getattr(config, key) != defaults[key]]
    if changed:
        raise ConfigError(
            f"{agent} does not implement {', '.join(changed)}; use the torch agent, or set them back to their "
            f"defaults ({', '.join(f'{k}={defaults[k]!r}' for k in keys)})"
        )


TORCH_OBSERVATION_SPACES: tuple[type[gym.Space], ...] = (
    gym.spaces.Box,
    gym.spaces.Discrete,
    gym.spaces.Dict,
    gym.spaces.Tuple,
)
"""Observation spaces the torch DQN, PPO, A2C and SAC read through ``cardio.agents.networks.make_torso`` (Dict and
Tuple nested too); the JAX twins override ``observation_spaces`` with the flat spaces they read."""


@dataclass
class DQNConfig(AgentConfig[Any]):
    """DQN hyperparameters; the same keys, in the same order, as ``configs/agent/dqn.yaml``."""

    zoo_name: ClassVar[str] = "dqn"
    """Algorithm key of the rl-zoo files, ``configs/zoo/dqn/<EnvId>.yaml`` (the JAX twin shares it)."""
    agent_path: ClassVar[str] = "cardio.agents.dqn:DQN"
    """The torch agent (imported only when built)."""
    observation_spaces: ClassVar[tuple[type[gym.Space], ...]] = TORCH_OBSERVATION_SPACES
    """Observation spaces it takes."""
    action_spaces: ClassVar[tuple[type[gym.Space], ...]] = (gym.spaces.Discrete,)
    """Action spaces it takes."""

    lr: float = 1e-4
    """Adam learning rate (the initial one under a linear schedule)."""
    lr_schedule: str = "constant"
    """``constant`` or ``linear`` (decays to 0 at ``total_steps``, rl-zoo's ``lin_<lr>``)."""
    gamma: float = 0.99
    """Discount per env step (an n-step batch brings its own ``discount`` column instead)."""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """Widths of the Q-network's hidden layers; image observations get a Nature-CNN before them, Dict and Tuple
    observations one encoder per key (``cardio.agents.networks.make_torso``)."""
    activation: str = "relu"
    """Activation between hidden layers: tanh, relu, elu or gelu (rl-zoo's ``activation_fn``)."""
    target_update_interval: int = 10_000
    """Env steps between hard copies of the online network into the target network."""
    exploration_fraction: float = 0.1
    """Fraction of ``total_steps`` over which epsilon decays linearly from initial to final."""
    exploration_initial_eps: float = 1.0
    """Epsilon at step 0."""
    exploration_final_eps: float = 0.05
    """Epsilon after the decay."""
    max_grad_norm: float = 10.0
    """Gradient-norm clip of each optimiser step."""
    double_q: bool = False
    """Double DQN: pick the next action with the online net, value it with the target net."""


SCHEDULES = ("constant", "linear")
"""Values of ``PPOConfig.lr_schedule`` and ``clip_range_schedule``: constant, or linear to 0 at ``total_steps``."""


@dataclass
class ActorCriticConfig(AgentConfig[Any]):
    """The knobs PPO and A2C share (SB3's names and PPO's defaults; A2C changes three): the update's loss weights
    and the actor-critic network of ``cardio/agents/actor_critic.py``."""

    observation_spaces: ClassVar[tuple[type[gym.Space], ...]] = TORCH_OBSERVATION_SPACES
    """Observation spaces it takes."""
    action_spaces: ClassVar[tuple[type[gym.Space], ...]] = (gym.spaces.Discrete, gym.spaces.Box)
    """Action spaces it takes."""

    lr: float = 3e-4
    """Learning rate (the initial one under a linear schedule)."""
    lr_schedule: str = "constant"
    """``constant`` or ``linear`` (decays to 0 at ``total_steps``, rl-zoo's ``lin_<lr>``)."""
    gamma: float = 0.99
    """Discount per env step."""
    gae_lambda: float = 0.95
    """GAE lambda: 1 = Monte-Carlo (n-step) returns, 0 = one-step TD."""
    normalize_advantage: bool = True
    """Standardise advantages (per minibatch in PPO, over the rollout in A2C)."""
    ent_coef: float = 0.0
    """Weight of the entropy bonus."""
    vf_coef: float = 0.5
    """Weight of the value loss."""
    max_grad_norm: float = 0.5
    """Gradient-norm clip of each optimiser step."""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """Hidden widths of the actor MLP, and of the critic's unless ``vf_hidden_sizes`` (images: a Nature-CNN)."""
    vf_hidden_sizes: tuple[int, ...] | None = None
    """The critic's own hidden widths (rl-zoo's ``net_arch: {pi: [...], vf: [...]}``); ``None``: as the actor's."""
    activation: str = "tanh"
    """Activation of the MLPs: tanh, relu, elu or gelu."""
    ortho_init: bool = True
    """Orthogonal initialisation as in SB3 (gains sqrt(2) torso, 0.01 policy, 1 value)."""
    log_std_init: float = 0.0
    """Initial log standard deviation of the Gaussian policy (Box actions)."""
    share_torso: bool = False
    """Actor and critic share one torso (SB3 does for CNNs)."""
    use_sde: bool = False
    """gSDE exploration for Box actions (``cardio/agents/heads.py``): noise ``z(s) @ W`` with ``W`` held fixed."""
    sde_sample_freq: int = -1
    """Vector steps between fresh gSDE noise matrices within a rollout; -1: only at each rollout's start."""


@dataclass
class PPOConfig(ActorCriticConfig):
    """PPO hyperparameters; the same keys, in the same order, as ``configs/agent/ppo.yaml``."""

    zoo_name: ClassVar[str] = "ppo"
    """Algorithm key of the rl-zoo files, ``configs/zoo/ppo/<EnvId>.yaml`` (the JAX twin shares it)."""
    agent_path: ClassVar[str] = "cardio.agents.ppo:PPO"
    """The torch agent (imported only when built)."""

    n_epochs: int = 10
    """Passes over each rollout."""
    batch_size: int = 64
    """Minibatch size in transitions; best a divisor of the rollout (``n_steps * num_envs``), else a warning."""
    clip_range: float = 0.2
    """Clip of the probability ratio, ``|ratio - 1| <= clip_range`` (the initial one under a linear schedule)."""
    clip_range_schedule: str = "constant"
    """``constant`` or ``linear`` (decays to 0 at ``total_steps``, rl-zoo's ``lin_<clip>``)."""
    clip_range_vf: float | None = None
    """Clip of the value change around the rollout's values; ``None`` = no value clipping (SB3's default)."""

    def check_schedules(self) -> None:
        """Refuse an unknown ``lr_schedule`` or ``clip_range_schedule``; both twins call it when they are built.

        Raises:
            ConfigError: the key, the value given and :data:`SCHEDULES`.
        """
        for key in ("lr_schedule", "clip_range_schedule"):
            if getattr(self, key) not in SCHEDULES:
                raise ConfigError(f"agent.{key} must be one of {SCHEDULES}, got {getattr(self, key)!r}")

    def uneven_minibatches(self, steps: int, num_envs: int) -> str | None:
        """The warning for a rollout of ``steps x num_envs`` transitions that ``batch_size`` does not divide, or
        ``None``. Legal, as in SB3, but each epoch then ends on a runt minibatch. A batch of the rollout or more is
        one minibatch of the whole rollout, never uneven. Both twins ask on their first rollout only: a run's last
        rollout is cut to the steps left and may be short."""
        size = steps * num_envs
        if size % self.batch_size == 0 or self.batch_size >= size:
            return None
        return (
            f"PPO: the rollout of n_steps*num_envs = {steps}*{num_envs} = {size} transitions is not a multiple of "
            f"agent.batch_size={self.batch_size}, so each epoch ends with a minibatch of {size % self.batch_size}; "
            f"change runner.schedule.n_steps, env.num_envs or agent.batch_size"
        )


@dataclass
class A2CConfig(ActorCriticConfig):
    """A2C hyperparameters; the same keys, in the same order, as ``configs/agent/a2c.yaml``."""

    zoo_name: ClassVar[str] = "a2c"
    """Algorithm key of the rl-zoo files, ``configs/zoo/a2c/<EnvId>.yaml``."""
    agent_path: ClassVar[str] = "cardio.agents.a2c:A2C"
    """The agent (imported only when built)."""

    lr: float = 7e-4
    """Learning rate (the initial one under a linear schedule)."""
    gae_lambda: float = 1.0
    """GAE lambda: 1 = n-step returns as in the paper, 0 = one-step TD."""
    normalize_advantage: bool = False
    """Standardise advantages over the rollout."""
    use_rms_prop: bool = True
    """RMSprop (as in the paper and SB3) instead of Adam."""
    rms_prop_eps: float = 1e-5
    """Epsilon of RMSprop (and of Adam)."""
    rms_prop_alpha: float = 0.99
    """Smoothing constant of RMSprop's squared-gradient average."""
    rms_prop_tf_like: bool = False
    """TensorFlow's RMSprop (epsilon inside the square root, average starting at 1): SB3's ``RMSpropTFLike``,
    which rl-zoo's Atari A2C uses."""


@dataclass
class SACConfig(AgentConfig[Any]):
    """SAC hyperparameters; the same keys, in the same order, as ``configs/agent/sac.yaml``."""

    zoo_name: ClassVar[str] = "sac"
    """Algorithm key of the rl-zoo files, ``configs/zoo/sac/<EnvId>.yaml`` (the JAX twin shares it)."""
    agent_path: ClassVar[str] = "cardio.agents.sac:SAC"
    """The torch agent (imported only when built)."""
    observation_spaces: ClassVar[tuple[type[gym.Space], ...]] = TORCH_OBSERVATION_SPACES
    """Observation spaces it takes."""
    action_spaces: ClassVar[tuple[type[gym.Space], ...]] = (gym.spaces.Box,)
    """Action spaces it takes."""

    lr: float = 3e-4
    """Adam learning rate of actor, critics and entropy coefficient (the initial one under a linear schedule)."""
    lr_schedule: str = "constant"
    """``constant`` or ``linear`` (decays to 0 at ``total_steps``, rl-zoo's ``lin_<lr>``)."""
    gamma: float = 0.99
    """Discount per env step (an n-step batch brings its own ``discount`` column instead)."""
    tau: float = 0.005
    """Polyak coefficient of the soft target-critic update made after every gradient step."""
    hidden_sizes: tuple[int, ...] = (256, 256)
    """Hidden widths of the actor torso, and of each critic unless ``qf_hidden_sizes``; Dict, Tuple and image
    observations are encoded first (``cardio.agents.networks.make_torso``)."""
    qf_hidden_sizes: tuple[int, ...] | None = None
    """Each critic's own hidden widths (rl-zoo's ``net_arch: {pi: [...], qf: [...]}``); ``None``: as the actor's."""
    activation: str = "relu"
    """Activation between hidden layers: tanh, relu, elu or gelu (rl-zoo's ``activation_fn``)."""
    n_critics: int = 2
    """Q-networks whose minimum is used (clipped double Q)."""
    ent_coef: float | str = "auto"
    """Entropy coefficient alpha: a float keeps it fixed, ``"auto"`` or ``"auto_0.1"`` learns it from 1 (or 0.1)."""
    target_entropy: float | str = "auto"
    """Entropy the tuning aims at; ``"auto"`` = minus the action dimension."""
    use_sde: bool = False
    """gSDE exploration (``cardio/agents/heads.py``): noise ``z(s) @ W`` with ``W`` held fixed between draws."""
    sde_sample_freq: int = -1
    """Vector steps between fresh gSDE matrices within a collection phase; -1: only at each phase's start."""
    use_sde_at_warmup: bool = False
    """Explore with gSDE instead of uniform actions before ``learning_starts`` (read by the schedule)."""
    log_std_init: float = -3.0
    """Initial log sigma of the gSDE noise matrix (unused without ``use_sde``, as in SB3)."""

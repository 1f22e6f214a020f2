"""Network torsos and small torch helpers shared by the shipped agents."""

from __future__ import annotations

from collections.abc import Sequence

import gymnasium as gym
import numpy as np
import torch
from torch import nn


def flat_dim(space: gym.Space) -> int:
    """Input width of an MLP reading a Box or Discrete observation (Discrete is one-hot)."""
    if isinstance(space, gym.spaces.Discrete):
        return int(space.n)
    if isinstance(space, gym.spaces.Box):
        return int(np.prod(space.shape))
    raise TypeError(f"no flat encoding for {space}")


def mlp(in_dim: int, hidden_sizes: Sequence[int], out_dim: int, activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """``Linear -> act`` for every hidden size, then a linear head of ``out_dim``."""
    layers: list[nn.Module] = []
    for width in hidden_sizes:
        layers += [nn.Linear(in_dim, width), activation()]
        in_dim = width
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


def to_tensor(x: np.ndarray, device: torch.device | str, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Numpy -> torch without a copy when dtype and device allow."""
    return torch.as_tensor(np.asarray(x), device=device).to(dtype)


@torch.no_grad()
def hard_update(target: nn.Module, source: nn.Module) -> None:
    """``target <- source``, parameters and buffers, in one ``_foreach_copy_``: bit-identical to
    ``load_state_dict`` at about a fifth of its cost (docs/performance.md), which matters when DQN syncs every
    10 env steps (rl-zoo CartPole)."""
    torch._foreach_copy_([*target.parameters(), *target.buffers()], [*source.parameters(), *source.buffers()])


def syncs_due(env_steps: int, interval: int, done: int) -> tuple[bool, int]:
    """Whether a periodic event (a hard target sync) is due, and the new count of events done.

    The event fires at the first call at or past each multiple of ``interval`` env steps. The count is a function
    of the step counter, so when the counter goes backwards (``Runner.reset()``, a meta-learning loop restarting
    its inner run) the count restarts with it instead of waiting for the old step count to come round again.

    Args:
        env_steps: env steps so far.
        interval: env steps between events.
        done: events done so far (the value this function returned last time).
    """
    due = env_steps // interval
    if due < done:  # the step counter went backwards: count afresh from here
        return False, due
    return due > done, due


@torch.no_grad()
def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """Polyak averaging ``target <- tau * source + (1 - tau) * target``, one ``_foreach_lerp_`` for all tensors
    (the same per-element arithmetic as a loop of ``lerp_``)."""
    torch._foreach_lerp_(list(target.parameters()), list(source.parameters()), tau)


def argmax_random_ties(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Row-wise argmax over the last axis, choosing uniformly among tied maxima.

    ``np.argmax`` returns the first maximum, which biases a fresh or quantised Q-head toward action 0.
    """
    is_max = values == values.max(axis=-1, keepdims=True)
    noise = rng.random(values.shape)
    return np.argmax(np.where(is_max, noise, -1.0), axis=-1)


ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU, "gelu": nn.GELU}
"""Activation names accepted in configs (``activation: tanh``)."""


def is_image_space(space: gym.Space) -> bool:
    """A channel-first ``[C, H, W]`` uint8 Box: the observations a Nature-CNN torso reads."""
    return isinstance(space, gym.spaces.Box) and len(space.shape) == 3 and space.dtype == np.uint8


class NatureCNN(nn.Module):
    """The Atari torso of Mnih et al. 2015: three convolutions and a 512-wide linear layer, all ReLU.

    Args:
        observation_space: channel-first ``[C, H, W]`` uint8 Box (e.g. 4 stacked 84x84 frames); pixels are
            scaled to [0, 1] inside ``forward``.
        features_dim: width of the output features.
    """

    def __init__(self, observation_space: gym.Space, features_dim: int = 512) -> None:
        super().__init__()
        if not is_image_space(observation_space):
            raise TypeError(f"NatureCNN needs a [C, H, W] uint8 Box observation space, got {observation_space}")
        channels = observation_space.shape[0]  # type: ignore[index]
        self.convs = nn.Sequential(
            nn.Conv2d(channels, 32, kernel_size=8, stride=4),
            nn.ReLU(),
            nn.Conv2d(32, 64, kernel_size=4, stride=2),
            nn.ReLU(),
            nn.Conv2d(64, 64, kernel_size=3, stride=1),
            nn.ReLU(),
            nn.Flatten(),
        )
        with torch.no_grad():  # conv output width for this image size
            n_flat = self.convs(torch.zeros(1, *observation_space.shape)).shape[1]  # type: ignore[misc]
        self.linear = nn.Sequential(nn.Linear(n_flat, features_dim), nn.ReLU())
        self.features_dim = features_dim

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.linear(self.convs(obs.float() / 255.0))


class MLPTorso(nn.Module):
    """Flatten, then ``Linear -> activation`` for every hidden size (no output layer: heads add their own).

    Args:
        observation_space: Box (flattened) or Discrete (one-hot) observations.
        hidden_sizes: widths of the hidden layers; empty means features are the flat observation itself.
        activation: activation class between layers.
    """

    def __init__(
        self, observation_space: gym.Space, hidden_sizes: Sequence[int], activation: type[nn.Module] = nn.Tanh
    ) -> None:
        super().__init__()
        self.one_hot = int(observation_space.n) if isinstance(observation_space, gym.spaces.Discrete) else 0
        in_dim = flat_dim(observation_space)
        layers: list[nn.Module] = []
        for width in hidden_sizes:
            layers += [nn.Linear(in_dim, width), activation()]
            in_dim = width
        self.layers = nn.Sequential(*layers)
        self.features_dim = in_dim

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        if self.one_hot:
            return self.layers(nn.functional.one_hot(obs.long().reshape(-1), self.one_hot).float())
        return self.layers(obs.float().flatten(1))


def make_torso(
    observation_space: gym.Space, hidden_sizes: Sequence[int], activation: type[nn.Module] = nn.Tanh
) -> MLPTorso | NatureCNN:
    """Nature-CNN for image observations, else an MLP; either exposes ``features_dim``."""
    if is_image_space(observation_space):
        return NatureCNN(observation_space)
    return MLPTorso(observation_space, hidden_sizes, activation)


def orthogonal_init(module: nn.Module, gain: float) -> None:
    """Orthogonal weights with ``gain`` and zero biases for every Linear/Conv layer in ``module`` (SB3's init:
    gain sqrt(2) for torsos, 0.01 for policy heads, 1 for value heads)."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear | nn.Conv2d):
            nn.init.orthogonal_(layer.weight, gain)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


LR_SCHEDULES = ("constant", "linear")
"""Learning-rate schedules: ``constant``, or ``linear`` from ``lr`` down to 0 at ``total_steps`` (rl-zoo's
``lin_<lr>``, SB3's ``progress_remaining * lr``)."""


def check_lr_schedule(schedule: str) -> None:
    """Raise ``ValueError`` naming ``agent.lr_schedule`` unless ``schedule`` is one of :data:`LR_SCHEDULES`."""
    if schedule not in LR_SCHEDULES:
        raise ValueError(f"agent.lr_schedule must be one of {LR_SCHEDULES}, got {schedule!r}")


def scheduled_lr(
    optimizers: Sequence[torch.optim.Optimizer | None], lr: float, schedule: str, progress_remaining: float
) -> float:
    """Set (and return) the learning rate of every optimiser for ``progress_remaining`` (1 at the start of
    training, 0 at ``total_steps``); agents call it from ``on_progress``, so it follows env steps."""
    value = lr * progress_remaining if schedule == "linear" else lr
    for optimizer in optimizers:
        if optimizer is not None:
            for group in optimizer.param_groups:
                group["lr"] = value
    return value


def activation_class(name: str) -> type[nn.Module]:
    """The activation class for a config name, or ``ValueError`` naming ``agent.activation``."""
    if name not in ACTIVATIONS:
        raise ValueError(f"agent.activation must be one of {sorted(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]

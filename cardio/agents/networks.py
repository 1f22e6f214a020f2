"""Network torsos and small torch helpers shared by the shipped agents.

A torso turns an observation batch into a ``[B, features_dim]`` feature tensor; heads add their own output
layer. :func:`make_torso` picks one from the observation space alone, so an agent supports every space it
covers: a flat Box or Discrete (MLP), an image Box (Nature-CNN) and Dict / Tuple spaces, nested too
(:class:`MultiInputTorso`: one encoder per leaf, concatenated, then the MLP: SB3's ``MultiInputPolicy``).
Observations reach a torso as a tensor, or as the same nested dict / tuple of tensors as the space
(:func:`obs_to_tensor`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import optree
import torch
from torch import nn

from cardio.agents.counters import syncs_due  # noqa: F401  (re-exported: the torch agents import it here)
from cardio.pytree import Tree, path_name, tree_map


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


def obs_to_tensor(obs: Tree, device: torch.device | str) -> Any:
    """An observation batch (an array, or a nested dict / tuple of arrays) as the same tree of tensors.

    uint8 leaves (images) stay uint8, four times smaller on the way to the device; the Nature-CNN scales them.
    Everything else becomes float32.

    Args:
        obs: the batch, leading dim ``[B, ...]`` (or ``[T, N, ...]``) on every leaf.
        device: target torch device.
    """

    def convert(x: Any) -> torch.Tensor:
        x = np.asarray(x)
        return torch.as_tensor(x, device=device) if x.dtype == np.uint8 else to_tensor(x, device)

    return tree_map(convert, obs)


def obs_batch_size(obs: Any) -> int:
    """Rows in an observation batch (a tensor/array, or a tree of them): the leading dim of its first leaf."""
    return int(optree.tree_leaves(obs, none_is_leaf=False)[0].shape[0])


def obs_index(obs: Any, index: Any) -> Any:
    """``leaf[index]`` on every leaf of an observation tensor tree (a plain tensor works too)."""
    return tree_map(lambda x: x[index], obs)


def obs_flatten(obs: Any, start_dim: int = 0, end_dim: int = 1) -> Any:
    """``leaf.flatten(start_dim, end_dim)`` on every leaf: ``[T, N, ...] -> [T*N, ...]`` for a rollout."""
    return tree_map(lambda x: x.flatten(start_dim, end_dim), obs)


@torch.no_grad()
def hard_update(target: nn.Module, source: nn.Module) -> None:
    """``target <- source``, parameters and buffers, in one ``_foreach_copy_``: bit-identical to
    ``load_state_dict`` at about a fifth of its cost (docs/performance.md), which matters when DQN syncs every
    10 env steps (rl-zoo CartPole)."""
    torch._foreach_copy_([*target.parameters(), *target.buffers()], [*source.parameters(), *source.buffers()])


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


def is_channel_last(space: gym.Space) -> bool:
    """Whether a 3-d Box is ``[H, W, C]`` (gymnasium's render layout) rather than ``[C, H, W]`` (stacked frames):
    the channel axis is taken to be the smallest one, and ``[C, H, W]`` wins a tie."""
    shape = space.shape or ()
    return int(np.argmin(shape)) == 2 and shape[2] < shape[0]


def is_image_space(space: gym.Space) -> bool:
    """A 3-d uint8 Box, ``[C, H, W]`` or ``[H, W, C]``, at least 36x36 pixels (the Nature-CNN's smallest
    input): the observations a Nature-CNN torso reads. Smaller uint8 arrays are flattened into an MLP."""
    if not (isinstance(space, gym.spaces.Box) and len(space.shape) == 3 and space.dtype == np.uint8):
        return False
    h, w = space.shape[:2] if is_channel_last(space) else space.shape[1:]
    return min(h, w) >= 36


class NatureCNN(nn.Module):
    """The Atari torso of Mnih et al. 2015: three convolutions and a 512-wide linear layer, all ReLU.

    Args:
        observation_space: ``[C, H, W]`` (e.g. 4 stacked 84x84 frames) or ``[H, W, C]`` uint8 Box, at least
            36x36 pixels; pixels are scaled to [0, 1] inside ``forward``, and ``[H, W, C]`` batches are
            permuted to channel-first there too.
        features_dim: width of the output features.
    """

    def __init__(self, observation_space: gym.Space, features_dim: int = 512) -> None:
        super().__init__()
        if not is_image_space(observation_space):
            raise TypeError(
                f"NatureCNN needs a [C, H, W] or [H, W, C] uint8 Box observation space of at least 36x36 pixels, "
                f"got {observation_space}"
            )
        self.channel_last = is_channel_last(observation_space)
        shape = tuple(observation_space.shape)  # type: ignore[arg-type]
        chw = (shape[2], shape[0], shape[1]) if self.channel_last else shape
        channels = chw[0]
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
            n_flat = self.convs(torch.zeros(1, *chw)).shape[1]
        self.linear = nn.Sequential(nn.Linear(n_flat, features_dim), nn.ReLU())
        self.features_dim = features_dim

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        if self.channel_last:
            obs = obs.permute(0, 3, 1, 2)  # [B, H, W, C] -> [B, C, H, W]
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


class FlatEncoder(nn.Module):
    """One leaf of a multi-input observation as a flat float vector: Box flattened, Discrete one-hot,
    MultiDiscrete one-hot per component, MultiBinary as 0/1.

    Args:
        space: the leaf's space.
    """

    def __init__(self, space: gym.Space) -> None:
        super().__init__()
        if isinstance(space, gym.spaces.Discrete):
            self.sizes: tuple[int, ...] = (int(space.n),)
        elif isinstance(space, gym.spaces.MultiDiscrete):
            self.sizes = tuple(int(n) for n in np.asarray(space.nvec).ravel())
        elif isinstance(space, gym.spaces.Box | gym.spaces.MultiBinary):
            self.sizes = ()
        else:
            raise TypeError(f"no encoder for observation space {space} (Box, Discrete, MultiDiscrete, MultiBinary)")
        self.offsets = torch.as_tensor(np.asarray(space.start).ravel()) if hasattr(space, "start") else None
        self.features_dim = sum(self.sizes) if self.sizes else int(np.prod(space.shape or (1,)))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        if not self.sizes:
            return obs.float().flatten(1)
        index = obs.long().reshape(obs.shape[0], -1)
        if self.offsets is not None:  # Discrete(n, start=s) counts from s
            index = index - self.offsets.to(index.device)
        parts = [nn.functional.one_hot(index[:, i], n) for i, n in enumerate(self.sizes)]
        return torch.cat(parts, dim=1).float()


def leaf_spaces(space: gym.Space) -> dict[str, gym.Space]:
    """The non-container spaces inside a (nested) Dict / Tuple space, named as :func:`cardio.pytree.named_leaves`
    names the leaves of an observation (``"sensors/position"``, ``"1/0"``), in the same order."""
    if isinstance(space, gym.spaces.Dict):
        children: list[tuple[Any, gym.Space]] = sorted(space.spaces.items())  # optree sorts dict keys too
    elif isinstance(space, gym.spaces.Tuple):
        children = list(enumerate(space.spaces))
    else:
        return {"": space}
    out: dict[str, gym.Space] = {}
    for key, child in children:
        for name, leaf in leaf_spaces(child).items():
            out[f"{key}/{name}" if name else str(key)] = leaf
    return out


class MultiInputTorso(nn.Module):
    """Dict / Tuple observations, nested too: one encoder per leaf (a Nature-CNN of 256 features for image
    leaves, :class:`FlatEncoder` for the rest), concatenated, then ``Linear -> activation`` for every hidden
    size (SB3's ``MultiInputPolicy``: ``CombinedExtractor`` then the MLP).

    Args:
        observation_space: a Dict or Tuple space whose leaves are Box, Discrete, MultiDiscrete or MultiBinary.
        hidden_sizes: widths of the MLP over the concatenated features; empty means the concatenation itself.
        activation: activation class between layers.
        image_features: output width of each image leaf's Nature-CNN.
    """

    def __init__(
        self,
        observation_space: gym.Space,
        hidden_sizes: Sequence[int],
        activation: type[nn.Module] = nn.Tanh,
        image_features: int = 256,
    ) -> None:
        super().__init__()
        leaves = leaf_spaces(observation_space)
        self.names = list(leaves)
        encoders = [NatureCNN(s, image_features) if is_image_space(s) else FlatEncoder(s) for s in leaves.values()]
        self.encoders = nn.ModuleList(encoders)
        in_dim = sum(e.features_dim for e in encoders)
        layers: list[nn.Module] = []
        for width in hidden_sizes:
            layers += [nn.Linear(in_dim, width), activation()]
            in_dim = width
        self.layers = nn.Sequential(*layers)
        self.features_dim = in_dim

    def forward(self, obs: Any) -> torch.Tensor:
        paths, values, _ = optree.tree_flatten_with_path(obs, none_is_leaf=False)
        by_name = {path_name(p): v for p, v in zip(paths, values, strict=True)}
        features = [enc(by_name[name]) for name, enc in zip(self.names, self.encoders, strict=True)]
        return self.layers(torch.cat(features, dim=1))


def make_torso(
    observation_space: gym.Space, hidden_sizes: Sequence[int] = (), activation: type[nn.Module] = nn.Tanh
) -> MLPTorso | NatureCNN | MultiInputTorso:
    """The torso for an observation space; each exposes ``features_dim``.

    Dict / Tuple (nested too): :class:`MultiInputTorso`; a 3-d uint8 Box (an image): :class:`NatureCNN`;
    any other Box or Discrete: :class:`MLPTorso`.

    Args:
        observation_space: the env's single-env observation space.
        hidden_sizes: MLP widths (over the flat observation, or over the concatenated multi-input features).
        activation: activation class between MLP layers.
    """
    if isinstance(observation_space, gym.spaces.Dict | gym.spaces.Tuple):
        return MultiInputTorso(observation_space, hidden_sizes, activation)
    if is_image_space(observation_space):
        return NatureCNN(observation_space)
    return MLPTorso(observation_space, hidden_sizes, activation)


class RMSpropTFLike(torch.optim.Optimizer):
    """TensorFlow's RMSprop, as SB3's ``RMSpropTFLike`` that rl-zoo's Atari A2C uses (torch's differs twice):
    the squared-gradient average ``v`` starts at 1, not 0, and epsilon sits inside the square root:
    ``v <- alpha * v + (1 - alpha) * g**2``, ``p <- p - lr * g / sqrt(v + eps)``.

    Args:
        params: the parameters to optimise.
        lr: learning rate.
        alpha: smoothing constant of ``v``.
        eps: added to ``v`` under the square root.
    """

    def __init__(self, params: Any, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8) -> None:
        super().__init__(params, {"lr": lr, "alpha": alpha, "eps": eps})

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:  # type: ignore[override]
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["square_avg"] = torch.ones_like(p)  # TF's initial accumulator
                v = state["square_avg"]
                v.mul_(group["alpha"]).addcmul_(p.grad, p.grad, value=1 - group["alpha"])
                p.addcdiv_(p.grad, v.add(group["eps"]).sqrt_(), value=-group["lr"])


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

"""Policy heads: a linear layer from torso features to an action distribution.

Every head is an ``nn.Module`` whose ``forward(features [B, F])`` returns a distribution object with the same
four methods, so an agent can be written once for Discrete and Box actions:

``sample() -> action [B, ...]``, ``mode() -> action [B, ...]`` (the deterministic action used for evaluation),
``log_prob(action) -> [B]`` (summed over action dimensions), ``entropy() -> [B]``.

Shapes: B batch, F feature width, A action dimensions (Box) or number of actions (Discrete).

:class:`SquashedGaussianHead` (SAC) is the exception: it returns ``(action, log_prob)`` directly, because its
reparameterised sample and the tanh log-density correction belong together.
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import torch
from torch import nn


class Categorical:
    """Distribution over ``A`` discrete actions from unnormalised ``logits [B, A]``."""

    def __init__(self, logits: torch.Tensor) -> None:
        self.logits = torch.log_softmax(logits, dim=-1)  # normalised log-probabilities (far cheaper than logsumexp)

    def sample(self) -> torch.Tensor:
        # Gumbel-max: argmax(log p + Gumbel noise) is a draw from p; several times cheaper than multinomial.
        return (self.logits - torch.empty_like(self.logits).exponential_().log()).argmax(dim=-1)

    def mode(self) -> torch.Tensor:
        return self.logits.argmax(dim=-1)

    def log_prob(self, action: torch.Tensor) -> torch.Tensor:
        return self.logits.gather(-1, action.long().unsqueeze(-1)).squeeze(-1)

    def entropy(self) -> torch.Tensor:
        return -(self.logits.exp() * self.logits).sum(dim=-1)


class DiagGaussian:
    """Independent normal per action dimension: ``mean [B, A]`` and ``log_std [A]`` or ``[B, A]``."""

    def __init__(self, mean: torch.Tensor, log_std: torch.Tensor) -> None:
        self.mean = mean
        self.log_std = log_std.expand_as(mean)

    def sample(self) -> torch.Tensor:
        return self.mean + self.log_std.exp() * torch.randn_like(self.mean)

    def mode(self) -> torch.Tensor:
        return self.mean

    def log_prob(self, action: torch.Tensor) -> torch.Tensor:
        z = (action - self.mean) * torch.exp(-self.log_std)
        return (-0.5 * z.pow(2) - self.log_std - 0.5 * math.log(2 * math.pi)).sum(dim=-1)

    def entropy(self) -> torch.Tensor:
        return (self.log_std + 0.5 * (1.0 + math.log(2 * math.pi))).sum(dim=-1)


class CategoricalHead(nn.Module):
    """Logits for a ``Discrete(A)`` action space.

    Args:
        features_dim: torso output width F.
        num_actions: A.
    """

    def __init__(self, features_dim: int, num_actions: int) -> None:
        super().__init__()
        self.linear = nn.Linear(features_dim, num_actions)

    def forward(self, features: torch.Tensor) -> Categorical:
        return Categorical(self.linear(features))


class DiagGaussianHead(nn.Module):
    """State-dependent mean, state-independent learned log standard deviation (SB3's PPO/A2C Gaussian).

    Args:
        features_dim: torso output width F.
        action_dim: A, the flat size of the Box action space.
        log_std_init: initial log standard deviation of every dimension (0 = std 1).
    """

    def __init__(self, features_dim: int, action_dim: int, log_std_init: float = 0.0) -> None:
        super().__init__()
        self.linear = nn.Linear(features_dim, action_dim)
        self.log_std = nn.Parameter(torch.full((action_dim,), float(log_std_init)))

    def forward(self, features: torch.Tensor) -> DiagGaussian:
        return DiagGaussian(self.linear(features), self.log_std)


class StateDependentGaussian(DiagGaussian):
    """gSDE's Gaussian: ``u = mean + z @ W`` with ``W ~ N(0, sigma^2)`` fixed between resamples (see
    :class:`StateDependentNoiseHead`). For a fixed ``W`` the sample is a deterministic function of the state; its
    density is the diagonal Gaussian ``N(mean, var)`` with ``var_a = sum_f z_f^2 sigma_fa^2``.

    Args:
        mean: ``[B, A]``.
        latent: ``z [B, F]``, the policy features (the head detaches them unless it learns features through the
            noise, see :class:`StateDependentNoiseHead`).
        std: ``sigma [F, A]``.
        eps: ``[M, F, A]`` standard normal draws; ``W = eps * sigma``. ``M = B`` gives each row its own matrix
            (one per env while acting), any other ``M`` uses ``eps[0]`` for every row (a batch in an update).
    """

    def __init__(self, mean: torch.Tensor, latent: torch.Tensor, std: torch.Tensor, eps: torch.Tensor) -> None:
        variance = (latent**2) @ (std**2)  # [B, A]
        super().__init__(mean, 0.5 * torch.log(variance + GSDE_VARIANCE_EPS))
        weights = eps * std if len(eps) == len(latent) else (eps[0] * std).expand(len(latent), *std.shape)
        self.noise = torch.einsum("bf,bfa->ba", latent, weights)  # [B, A]

    def sample(self) -> torch.Tensor:
        return self.mean + self.noise


GSDE_VARIANCE_EPS = 1e-6
"""Added to gSDE's variance before the square root, as in SB3, so an all-zero feature row keeps a density."""


class StateDependentNoiseHead(nn.Module):
    """Generalised state-dependent exploration (gSDE; Raffin, Kober and Stulp 2021, "Smooth Exploration for
    Robotic Reinforcement Learning", arXiv:2005.05719), the exploration rl-zoo uses on continuous control.

    The exploration noise is ``z(s) @ W``: the policy features ``z(s) [F]`` times a noise matrix ``W [F, A]``
    drawn from ``N(0, sigma^2)`` entrywise and held fixed until :meth:`resample` (every ``sde_sample_freq``
    steps and at each rollout's start, driven by the agent), so within that stretch the action is a smooth,
    deterministic function of the state. ``log sigma [F, A]`` is learnt, one entry per (feature, action).

    Args:
        features_dim: F.
        action_dim: A.
        log_std_init: initial ``log sigma`` of every entry.
        use_expln: ``sigma = expln(log sigma)`` (``exp`` below 0, ``log1p + 1`` above) keeps sigma from growing
            fast; SB3's ``use_expln``.
        clip_mean: clamp the mean to ``[-clip_mean, clip_mean]`` before a tanh squash (SB3's SAC uses 2);
            0 = no clamp.
        learn_features: the noise and the variance pass gradients on to the features (the torso learns through
            them). SB3 does this for SAC, whose actor loss differentiates through the sampled action, and not for
            PPO/A2C, whose features are detached here (``learn_features=False``).
    """

    def __init__(
        self, features_dim: int, action_dim: int, log_std_init: float = -2.0, use_expln: bool = False,
        clip_mean: float = 0.0, learn_features: bool = False,
    ) -> None:  # fmt: skip
        super().__init__()
        self.linear = nn.Linear(features_dim, action_dim)
        self.log_std = nn.Parameter(torch.full((features_dim, action_dim), float(log_std_init)))
        self.use_expln, self.clip_mean, self.learn_features = use_expln, clip_mean, learn_features
        self.register_buffer("eps", torch.randn(1, features_dim, action_dim), persistent=False)

    def std(self) -> torch.Tensor:
        """``sigma [F, A]``."""
        if not self.use_expln:
            return self.log_std.exp()
        below = torch.exp(self.log_std.clamp(max=0.0))
        above = torch.log1p(self.log_std.clamp(min=0.0)) + 1.0
        return torch.where(self.log_std <= 0, below, above)

    @torch.no_grad()
    def resample(self, num_matrices: int = 1, generator: torch.Generator | None = None) -> None:
        """Draw fresh noise matrices: ``num_matrices = N`` gives each of N envs its own."""
        shape = (num_matrices, *self.log_std.shape)
        self.eps = torch.randn(shape, generator=generator, device=self.log_std.device)

    def forward(self, features: torch.Tensor) -> StateDependentGaussian:
        mean = self.linear(features)
        if self.clip_mean > 0:
            mean = mean.clamp(-self.clip_mean, self.clip_mean)
        latent = features if self.learn_features else features.detach()
        return StateDependentGaussian(mean, latent, self.std(), self.eps)


class NoiseResampler:
    """When gSDE draws fresh noise matrices, as SB3 does: at the first exploring step of each rollout (the agent
    calls :meth:`new_rollout` after each update) and then every ``sample_freq`` steps (``-1``: never within a
    rollout). One matrix per env.

    Args:
        head: the gSDE head whose matrices are redrawn.
        sample_freq: rl-zoo's ``sde_sample_freq``, in vector steps.
    """

    def __init__(self, head: StateDependentNoiseHead, sample_freq: int = -1) -> None:
        self.head, self.sample_freq, self.steps = head, sample_freq, 0

    def before_act(self, num_envs: int) -> None:
        """Call before every exploring ``act`` of ``num_envs`` envs."""
        if self.steps == 0 or (self.sample_freq > 0 and self.steps % self.sample_freq == 0):
            self.head.resample(num_envs)
        self.steps += 1

    def new_rollout(self) -> None:
        """The next exploring step starts a rollout: it draws fresh matrices."""
        self.steps = 0


def policy_head(
    features_dim: int, action_space: gym.Space, log_std_init: float = 0.0, use_sde: bool = False,
    use_expln: bool = False,
) -> nn.Module:  # fmt: skip
    """Categorical head for Discrete actions, diagonal Gaussian head for Box actions (gSDE's with ``use_sde``).

    Raises:
        TypeError: any other action space (agents check spaces first with ``require_space``).
        ValueError: ``use_sde`` with Discrete actions.
    """
    if isinstance(action_space, gym.spaces.Discrete):
        if use_sde:
            raise ValueError(f"agent.use_sde needs a Box action space, the env has {action_space}")
        return CategoricalHead(features_dim, int(action_space.n))
    if isinstance(action_space, gym.spaces.Box):
        action_dim = int(np.prod(action_space.shape))
        if use_sde:
            return StateDependentNoiseHead(features_dim, action_dim, log_std_init, use_expln)
        return DiagGaussianHead(features_dim, action_dim, log_std_init)
    raise TypeError(f"no policy head for action space {action_space}")


class SquashedGaussianHead(nn.Module):
    """Tanh-squashed diagonal Gaussian for bounded continuous actions (SAC, Haarnoja et al. 2018, appendix C).

    ``u ~ N(mean, std^2)``, ``a = tanh(u)`` in ``[-1, 1]``; the log-density gets the change-of-variables term
    ``log pi(a) = log N(u) - sum_i log(1 - tanh(u_i)^2)``, computed as ``2 * (log 2 - u - softplus(-2u))`` to stay
    finite when ``|u|`` is large. The agent rescales ``a`` to the env's bounds. With ``use_sde`` the Gaussian is
    gSDE's (:class:`StateDependentNoiseHead`, mean clamped to ``[-2, 2]`` and features learnt through the noise,
    as in SB3's SAC), otherwise its log std is a linear function of the features.

    Args:
        in_features: F.
        action_dim: A.
        log_std_min: lower clamp of the log standard deviation (SB3: -20).
        log_std_max: upper clamp (SB3: 2).
        use_sde: gSDE noise instead of independent noise per step.
        log_std_init: initial ``log sigma`` of the gSDE matrix (unused without ``use_sde``, as in SB3).
        use_expln: gSDE's ``expln`` parametrisation of sigma.
    """

    def __init__(
        self, in_features: int, action_dim: int, log_std_min: float = -20.0, log_std_max: float = 2.0,
        use_sde: bool = False, log_std_init: float = -3.0, use_expln: bool = False,
    ) -> None:  # fmt: skip
        super().__init__()
        # SB3's SAC: mean clamped to [-2, 2], and the features learn through the noise (learn_features=True)
        self.sde: StateDependentNoiseHead | None = None
        if use_sde:
            self.sde = StateDependentNoiseHead(in_features, action_dim, log_std_init, use_expln, 2.0, True)
        if self.sde is None:
            self.mean = nn.Linear(in_features, action_dim)
            self.log_std = nn.Linear(in_features, action_dim)
        self.log_std_min, self.log_std_max = log_std_min, log_std_max

    def forward(self, features: torch.Tensor, deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """``(action [B, A] in [-1, 1], log_prob [B])``; ``deterministic`` gives ``tanh(mean)`` (log-prob still
        evaluated there)."""
        if self.sde is not None:
            dist = self.sde(features)
            u = dist.mean if deterministic else dist.sample()  # [B, A]
            gaussian_log_prob = dist.log_prob(u)
        else:
            mean = self.mean(features)
            log_std = self.log_std(features).clamp(self.log_std_min, self.log_std_max)
            std = log_std.exp()
            u = mean if deterministic else mean + std * torch.randn_like(mean)  # reparameterised sample [B, A]
            gaussian_log_prob = (-0.5 * ((u - mean) / std) ** 2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        log_det = (2.0 * (math.log(2.0) - u - nn.functional.softplus(-2.0 * u))).sum(-1)  # sum log(1 - tanh(u)^2)
        return torch.tanh(u), gaussian_log_prob - log_det


def to_env_bounds(action: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Map ``[-1, 1]`` to the env's Box bounds ``[low, high]`` (affine, per action dim)."""
    return low + 0.5 * (action + 1.0) * (high - low)


def from_env_bounds(action: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`to_env_bounds`: stored env actions back to ``[-1, 1]`` for the critics."""
    return 2.0 * (action - low) / (high - low) - 1.0

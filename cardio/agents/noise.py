"""Exploration noise users reuse: epsilon-greedy for discrete actions, Gaussian and Ornstein-Uhlenbeck for
continuous ones.

Continuous noise is drawn in the policy's normalised action units ``[-1, 1]`` (as SB3 and rl-zoo do), so a
``sigma`` of 0.1 means 5 % of the action range on any env; the agent clips and rescales to the env's bounds.

Legend: N envs (rows), A action dims.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def linear_epsilon(env_steps: int, total_steps: int, fraction: float, initial: float, final: float) -> float:
    """Epsilon decayed linearly from ``initial`` to ``final`` over the first ``fraction * total_steps`` env steps."""
    decay = min(env_steps / max(fraction * total_steps, 1e-9), 1.0)
    return initial + decay * (final - initial)


def epsilon_greedy(
    greedy: Callable[[], np.ndarray],
    num_envs: int,
    num_actions: int,
    epsilon: float,
    rng: np.random.Generator,
    explore: bool = True,
) -> np.ndarray:
    """Each env's action is uniform with probability ``epsilon``, else ``greedy()``'s.

    Args:
        greedy: returns the ``[N]`` greedy actions; called only when some row is greedy, so a policy that needs
            no forward pass for an all-random step saves it.
        num_envs: rows N.
        num_actions: size of the Discrete action space.
        epsilon: probability of a uniform action per row.
        rng: the agent's generator (draw order: the explore mask, then the greedy actions, then the uniform ones).
        explore: ``False`` = greedy everywhere (no mask drawn; the uniform draw still happens, as in DQN).
    """
    explore_rows = rng.random(num_envs) < epsilon if explore else np.zeros(num_envs, dtype=bool)  # [N]
    if explore_rows.all():
        return rng.integers(0, num_actions, num_envs)
    action = greedy()
    return np.where(explore_rows, rng.integers(0, num_actions, num_envs), action)


class GaussianNoise:
    """Independent ``N(0, sigma^2)`` per env and action dim, in normalised action units.

    Args:
        action_dim: A.
        sigma: standard deviation (rl-zoo's ``noise_std``).
        rng: the agent's generator.
    """

    def __init__(self, action_dim: int, sigma: float, rng: np.random.Generator) -> None:
        self.action_dim = action_dim
        self.sigma = sigma
        self.rng = rng

    def __call__(self, num_envs: int) -> np.ndarray:
        """``[N, A]`` noise."""
        return self.rng.normal(0.0, self.sigma, (num_envs, self.action_dim))

    def reset(self, rows: np.ndarray | None = None) -> None:
        """Nothing to forget (stateless); present so both noises share one interface."""


class OrnsteinUhlenbeckNoise:
    """Temporally correlated noise ``x += theta * (mu - x) * dt + sigma * sqrt(dt) * N(0, 1)``, one process per env.

    Lillicrap et al. 2016 (DDPG) used it for physical control; Fujimoto et al. 2018 found plain Gaussian noise as
    good. The process runs on until :meth:`reset`: TD3 and DDPG reset the rows of envs whose episode ended from
    their ``on_episode_end`` hook, so no episode inherits the previous one's drift (SB3 also resets per episode).

    Args:
        action_dim: A.
        sigma: scale of the random kicks.
        rng: the agent's generator.
        theta: pull back toward ``mu`` per unit time.
        dt: time step.
        mu: long-run mean.
    """

    def __init__(
        self,
        action_dim: int,
        sigma: float,
        rng: np.random.Generator,
        theta: float = 0.15,
        dt: float = 1e-2,
        mu: float = 0.0,
    ) -> None:
        self.action_dim = action_dim
        self.sigma, self.theta, self.dt, self.mu = sigma, theta, dt, mu
        self.rng = rng
        self.x = np.zeros((0, action_dim))  # [N, A], sized on the first call

    def __call__(self, num_envs: int) -> np.ndarray:
        """``[N, A]`` noise: one step of each env's process."""
        if self.x.shape[0] != num_envs:
            self.x = np.full((num_envs, self.action_dim), self.mu)
        kick = self.rng.normal(0.0, 1.0, self.x.shape)
        self.x = self.x + self.theta * (self.mu - self.x) * self.dt + self.sigma * np.sqrt(self.dt) * kick
        return self.x.copy()

    def reset(self, rows: np.ndarray | None = None) -> None:
        """Restart the processes of ``rows`` (a bool or index array; ``None`` = all) at ``mu``."""
        if len(self.x) == 0:  # never drawn yet (e.g. warm-up steps with random actions): nothing to restart
            return
        if rows is None:
            self.x[:] = self.mu
        else:
            self.x[rows] = self.mu


ActionNoise = GaussianNoise | OrnsteinUhlenbeckNoise
"""Either noise: ``noise(num_envs) -> [N, A]`` and ``noise.reset(rows)``."""


def make_action_noise(kind: str, action_dim: int, sigma: float, rng: np.random.Generator) -> ActionNoise | None:
    """``"normal"`` -> :class:`GaussianNoise`, ``"ou"`` -> :class:`OrnsteinUhlenbeckNoise`, ``"none"`` -> ``None``.

    Raises:
        ValueError: an unknown ``kind`` (the config key is ``agent.noise_type``).
    """
    if kind == "normal":
        return GaussianNoise(action_dim, sigma, rng)
    if kind == "ou":
        return OrnsteinUhlenbeckNoise(action_dim, sigma, rng)
    if kind == "none":
        return None
    raise ValueError(f"agent.noise_type must be 'normal', 'ou' or 'none', got {kind!r}")

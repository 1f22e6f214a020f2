"""Returns for on-policy learning: generalised advantage estimation (GAE) over a ``[T, N]`` rollout.

Legend: T rollout steps (rows), N envs (columns); row ``t`` of column ``n`` is env ``n``'s ``t``-th transition
``(s_t, a_t, r_t, s'_t)`` with flags ``terminated_t``, ``truncated_t``. ``s'_t`` is the observation the step
produced; when the episode ended on that step it is the true final observation (the gatherer takes it from
``info["final_obs"]``), not the next episode's reset observation, and within an episode ``s'_t = s_{t+1}``.

The maths (Schulman et al. 2016, arXiv:1506.02438), with ``V`` the critic, ``gamma`` the discount and
``lam`` the GAE parameter::

    delta_t = r_t + gamma * (1 - terminated_t) * V(s'_t) - V(s_t)
    A_t     = delta_t + gamma * lam * (1 - done_t) * A_{t+1},     done_t = terminated_t | truncated_t
    A_T     = 0                                                   (nothing after the rollout's last row)
    R_t     = A_t + V(s_t)                                        (the critic's regression target)

Every step bootstraps from the value of its own next observation, so three cases come out right without a
special branch:

- **terminated**: ``V(s'_t)`` is multiplied by 0; the episode is over.
- **truncated** (a time limit): ``V(s'_t)`` of the true final observation is kept: the episode would have gone
  on, so the return beyond the limit is estimated, not assumed to be 0. This is SB3's timeout fix (its PRs #284
  and #633); CleanRL's PPO cuts here instead (its issue #198). ``tests/test_returns.py::test_infinite_horizon``
  fails if truncation is treated as termination.
- **the rollout's last row**: ``A_T = 0`` and ``delta_{T-1}`` already holds ``gamma * V(s'_{T-1})``, so the
  unfinished episode is bootstrapped.

In all three the ``lam`` chain is cut at ``done_t`` (and at the rollout end), so advantages never leak from one
episode into the next. With ``lam = 1`` ``R_t`` is the discounted Monte-Carlo return bootstrapped at the cut;
with ``lam = 0`` it is the one-step TD target.
"""

from __future__ import annotations

import numpy as np


def gae(
    reward: np.ndarray,
    value: np.ndarray,
    next_value: np.ndarray,
    terminated: np.ndarray,
    truncated: np.ndarray,
    gamma: float,
    lam: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Advantages ``A`` and value targets ``R = A + V`` of a rollout (see the module docstring for the maths).

    Args:
        reward: ``[T, N]`` rewards ``r_t``.
        value: ``[T, N]`` critic values ``V(s_t)`` of the observations acted on.
        next_value: ``[T, N]`` critic values ``V(s'_t)`` of each step's next observation (the true final
            observation where the episode ended).
        terminated: ``[T, N]`` bool, the episode reached a terminal state on this step.
        truncated: ``[T, N]`` bool, the episode was cut (time limit) on this step.
        gamma: discount per step.
        lam: GAE lambda in [0, 1].

    Returns:
        ``(advantages, returns)``, both ``[T, N]`` float32.
    """
    reward = np.asarray(reward, dtype=np.float64)
    not_terminal = 1.0 - np.asarray(terminated, dtype=np.float64)
    not_done = 1.0 - np.asarray(np.logical_or(terminated, truncated), dtype=np.float64)
    value = np.asarray(value, dtype=np.float64)
    delta = reward + gamma * not_terminal * np.asarray(next_value, dtype=np.float64) - value  # [T, N]
    advantages = np.zeros_like(delta)
    running = np.zeros(delta.shape[1:])  # A_{t+1}, [N]
    for t in reversed(range(len(delta))):
        running = delta[t] + gamma * lam * not_done[t] * running
        advantages[t] = running
    return advantages.astype(np.float32), (advantages + value).astype(np.float32)


def explained_variance(prediction: np.ndarray, target: np.ndarray) -> float:
    """``1 - Var[target - prediction] / Var[target]``: 1 is a perfect critic, 0 no better than a constant
    (``nan`` when the targets do not vary)."""
    var = float(np.var(target))
    return float("nan") if var == 0 else 1.0 - float(np.var(np.asarray(target) - np.asarray(prediction))) / var

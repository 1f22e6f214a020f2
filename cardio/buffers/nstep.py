"""n-step returns, computed at sample time from the stored one-step transitions.

Legend: B batch, n window length (``n_step``), N env streams, T rows per stream; ``j`` counts steps into the
window (0 = the sampled transition itself).

For a sampled transition at row ``t`` of env stream ``e`` the window is the next ``n`` transitions of the *same*
stream, rows ``t, t+1, ..., t+n-1`` (mod T). Step ``j`` of the window is *summed* iff

* it is stored and not past the stream's write cursor: ``j <= avail`` where ``avail = (cursor[e] - 1 - t) mod T``
  is the number of transitions written after ``t`` (the window never crosses the cursor, so it never reads a
  slot that holds an older, overwritten episode or nothing at all), and
* no earlier step of the window ended its episode: ``terminated[t+i] | truncated[t+i]`` is False for all i < j.

With ``k`` the number of summed steps (``1 <= k <= n``) the sample is

    reward     = sum_{j < k} gamma**j * r[t+j]                 (float64 sum, stored as the reward's dtype)
    discount   = gamma**k                                      (what the agent multiplies the bootstrap by)
    next_obs   = next_obs[t+k-1]                               (the bootstrap observation)
    terminated = terminated[t+k-1]                             (True: do not bootstrap at all)
    truncated  = truncated[t+k-1]

so the TD target is ``reward + discount * (1 - terminated) * V(next_obs)``. A window cut by truncation keeps
``terminated=False`` and bootstraps from the true final observation with ``gamma**k``; a window cut by the cursor
(the newest transitions of a stream) is simply a shorter, still unbiased-in-form, k-step return. Every other
field (``obs``, ``action``, agent extras) is the sampled transition's own. ``n=1`` gives ``k=1``:
the one-step transition with ``discount = gamma``; the buffer then skips this module altogether so its
batches equal the plain buffer's exactly (``tests/buffers/test_nstep.py::test_n1_equals_plain``).

``reduce=False`` returns the window unsummed: ``reward [B, n]`` holding ``r[t+j]`` where summed and 0 elsewhere,
and ``mask [B, n]`` (True where summed); ``discount``, ``next_obs`` and ``terminated`` are as above.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class NStepWindow:
    """What the n-step rule decides for a batch of sampled transitions."""

    last: np.ndarray
    """``[B]`` flat index of the window's last summed transition (its ``next_obs`` is the bootstrap)."""
    summed: np.ndarray
    """``[B, n]`` bool, True where step j contributes to the return."""
    rewards: np.ndarray
    """``[B, n]`` float64 window rewards ``r[t+j]`` (0 where not summed)."""
    k: np.ndarray
    """``[B]`` number of rewards summed."""

    def returns(self, gamma: float) -> np.ndarray:
        """``[B]`` discounted sum ``sum_j gamma**j * r[t+j]`` over the summed steps."""
        return self.rewards @ (gamma ** np.arange(self.rewards.shape[1]))


def nstep_window(
    flat: np.ndarray,
    cursor: np.ndarray,
    num_envs: int,
    rows_per_env: int,
    reward: np.ndarray,
    done: np.ndarray,
    n: int,
) -> NStepWindow:
    """The window of each sampled transition (see the module docstring for the rule).

    Args:
        flat: ``[B]`` flat indices ``t * N + e`` of the sampled transitions.
        cursor: ``[N]`` next row each stream writes.
        num_envs: N.
        rows_per_env: T.
        reward: ``[T * N]`` stored rewards, flat.
        done: ``[T * N]`` stored ``terminated | truncated``, flat (bool).
        n: window length.
    """
    rows, cols = np.divmod(flat, num_envs)  # [B], [B]
    steps = np.arange(n)  # [n]
    avail = (cursor[cols] - 1 - rows) % rows_per_env  # [B] transitions written after row t
    window = ((rows[:, None] + steps) % rows_per_env) * num_envs + cols[:, None]  # [B, n] flat
    ended = done[window]  # [B, n]
    ended_before = (np.cumsum(ended, axis=1) - ended) > 0  # [B, n] an earlier step ended the episode
    summed = (steps <= avail[:, None]) & ~ended_before  # [B, n]
    k = summed.sum(axis=1)  # [B], >= 1 (step 0 is always summed)
    last = np.take_along_axis(window, (k - 1)[:, None], axis=1)[:, 0]  # [B]
    rewards = np.where(summed, reward[window], 0.0).astype(np.float64)  # [B, n]
    return NStepWindow(last=last, summed=summed, rewards=rewards, k=k)

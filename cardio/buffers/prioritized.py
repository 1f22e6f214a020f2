"""Proportional prioritized replay (Schaul et al. 2016, https://arxiv.org/abs/1511.05952).

Legend: B batch, k batches, C capacity (flat slots ``t * N + e``), p_i stored priority of slot i.

* A slot's stored priority is ``p_i = (|td_i| + eps) ** alpha``; a newly written slot gets the running maximum
  of every priority set so far (1.0 before the first update), so it is sampled at least once soon.
* Sampling is stratified: the total mass is cut into B equal segments and one slot is drawn per segment, with
  probability ``P(i) = p_i / sum_j p_j`` overall.
* Importance weights correct the bias: ``w_i = (M * P(i)) ** -beta`` with M the number of stored transitions,
  normalised by **the largest weight in the sampled batch**, so ``w_i = (p_i / min_{j in batch} p_j) ** -beta``
  lies in (0, 1]. (Normalising by the largest weight over the whole buffer, as OpenAI baselines does, needs a
  second min-tree and only rescales every weight of a batch by the same factor <= 1, i.e. the learning rate.)
* ``beta`` anneals linearly from its initial value to 1 over the run: the runner calls
  ``on_progress(env_steps, total_steps)`` before every vector step.

The buffer underneath is a CircularBuffer, so n-step returns, vector envs and memory_saving all compose with it;
the weight and priority refer to the sampled (first) transition of an n-step window.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from cardio.buffers.circular import BufferError, CircularBuffer
from cardio.buffers.sumtree import SumTree
from cardio.pytree import Tree


class PrioritizedBuffer(CircularBuffer):
    """CircularBuffer whose ``sample`` draws by priority and adds ``weight [B]``.

    Args:
        capacity: total transitions held (all envs together).
        num_envs: env streams per ``add``.
        seed: seed of the sampling generator.
        alpha: priority exponent (0 = uniform sampling, 1 = fully proportional).
        beta: initial importance-weight exponent; annealed linearly to 1 by ``on_progress``.
        eps: added to ``|td_error|`` so no stored transition gets probability 0.
        **options: CircularBuffer options (``n_step``, ``gamma``, ``reduce``, ``memory_saving``).
    """

    alpha: float  # priority exponent
    beta0: float  # initial beta
    beta: float  # current importance-weight exponent
    eps: float  # |td| offset
    max_priority: float  # running max of stored priorities (p ** alpha), new slots get it
    tree: SumTree  # priorities of every flat slot (0 for empty slots)

    def __init__(
        self,
        capacity: int,
        num_envs: int = 1,
        seed: int | None = None,
        *,
        alpha: float = 0.6,
        beta: float = 0.4,
        eps: float = 1e-6,
        **options: Any,
    ) -> None:
        super().__init__(capacity, num_envs, seed, **options)
        if alpha < 0:
            raise BufferError(f"prioritized buffer alpha must be >= 0, got alpha={alpha}")
        if not 0.0 <= beta <= 1.0:
            raise BufferError(f"prioritized buffer beta must lie in [0, 1], got beta={beta}")
        if eps <= 0:
            raise BufferError(f"prioritized buffer eps must be > 0, got eps={eps}")
        self.alpha, self.beta0, self.beta, self.eps = float(alpha), float(beta), float(beta), float(eps)
        self.max_priority = 1.0
        self.tree = SumTree(self.capacity)

    def _written(self, flat: np.ndarray | slice) -> None:
        self.tree.set(flat, self.max_priority)

    def clear(self) -> None:
        super().clear()
        self.tree.clear()
        self.max_priority = 1.0

    def on_progress(self, env_steps: int, total_steps: int) -> None:
        """Anneal beta linearly from its initial value to 1 at ``total_steps``."""
        frac = min(env_steps / max(total_steps, 1), 1.0)
        self.beta = self.beta0 + frac * (1.0 - self.beta0)

    def sample_indices(self, n: int, batch_size: int | None = None) -> np.ndarray:
        """``n`` flat indices drawn with probability ``p_i / sum p``, stratified in groups of ``batch_size``."""
        b = batch_size or n
        total = self.tree.total
        segment = (np.arange(n) % b + self.rng.random(n)) * (total / b)  # [n] one draw per segment
        return self.tree.find(np.minimum(segment, np.nextafter(total, 0)))

    def sample(self, batch_size: int, num_batches: int | None = None) -> tuple[Tree, np.ndarray]:
        """Draw by priority: ``(batch, indices)``; the batch carries ``weight`` (see the module docstring)."""
        self._check_batch_size(batch_size)
        shape = (batch_size,) if num_batches is None else (num_batches, batch_size)
        indices = self.sample_indices(batch_size * (num_batches or 1), batch_size).reshape(shape)
        batch = self._gather(indices, pooled=True)
        p = self.tree.get(indices)  # [*shape]
        batch["weight"] = ((p / p.min(axis=-1, keepdims=True)) ** -self.beta).astype(np.float32)
        return batch, indices

    def update_priorities(self, indices: np.ndarray, td_errors: np.ndarray) -> None:
        """Set ``p_i = (|td_i| + eps) ** alpha`` for the sampled flat ``indices``.

        Raises:
            BufferError: shapes differ, or a TD error is NaN/inf (it would poison the sum tree).
        """
        indices = np.asarray(indices).reshape(-1)
        td = np.asarray(td_errors, dtype=np.float64).reshape(-1)
        if td.shape != indices.shape:
            raise BufferError(f"update_priorities got {indices.size} indices but {td.size} td_errors")
        if not np.all(np.isfinite(td)):
            raise BufferError("update_priorities got a NaN or infinite td_error; check the agent's loss")
        priority = (np.abs(td) + self.eps) ** self.alpha
        self.tree.set(indices, priority)
        self.max_priority = max(self.max_priority, float(priority.max()))

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "priorities": self.tree.get(np.arange(self.capacity)),
            "max_priority": self.max_priority,
            "beta": self.beta,
        }

    def _validate_state(self, state: Mapping[str, Any]) -> None:
        priorities = np.asarray(state.get("priorities", np.zeros(0)), dtype=np.float64)
        if priorities.shape != (self.capacity,) or "max_priority" not in state or "beta" not in state:
            raise BufferError(
                f"buffer state has {priorities.size} priorities (and max_priority/beta: "
                f"{'max_priority' in state}/{'beta' in state}), expected {self.capacity}: not a PrioritizedBuffer state"
            )

    def _after_load(self, state: Mapping[str, Any]) -> None:
        priorities = np.asarray(state["priorities"], dtype=np.float64)
        self.tree.clear()
        self.tree.set(np.arange(self.capacity), priorities)
        self.max_priority = float(state["max_priority"])
        self.beta = float(state["beta"])

"""Sequence replay for recurrent agents: ``[B, L]`` windows inside one env stream, with a mask.

Legend: B batch, L = burn_in + seq_len window length, N env streams, T rows per stream.

A window starts at a uniformly drawn stored row t of one stream e and covers rows ``t .. t+L-1`` of that same
stream (``indices [B, L]`` are flat ``row * N + e``), so envs never mix. Starts are drawn among the rows whose
whole window is stored (at least L transitions from t to the stream's newest); only while no stream holds L
transitions yet are other starts allowed, their tail padded.

``mask[b, j]`` is True while step j belongs to the window's first episode and is stored: it is False after the
first step whose ``terminated | truncated`` is set (that step itself is still True) and past the write cursor
(padding). Masked steps hold whatever the slot stores (the next episode, or old data); a recurrent loss must
multiply by ``mask``. The first ``burn_in`` steps are meant for warming up the hidden state without gradient.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cardio.buffers.circular import BufferError, CircularBuffer
from cardio.pytree import Tree


class SequenceBuffer(CircularBuffer):
    """CircularBuffer whose ``sample(batch_size)`` returns ``[B, burn_in + seq_len, ...]`` windows and ``mask``.

    Args:
        capacity: total transitions held (all envs together).
        num_envs: env streams per ``add``.
        seed: seed of the sampling generator.
        seq_len: steps per window that carry the loss.
        burn_in: extra steps in front of each window to warm up a recurrent state (R2D2-style).
        memory_saving: store each observation once (see CircularBuffer).
    """

    seq_len: int  # steps per window after burn-in
    burn_in: int  # warm-up steps at the window's start

    def __init__(
        self,
        capacity: int,
        num_envs: int = 1,
        seed: int | None = None,
        *,
        seq_len: int = 8,
        burn_in: int = 0,
        memory_saving: bool = False,
    ) -> None:
        super().__init__(capacity, num_envs, seed, memory_saving=memory_saving)
        self._check_window(seq_len, burn_in)
        self.seq_len, self.burn_in = int(seq_len), int(burn_in)

    def _required_fields(self) -> set[str]:
        return super()._required_fields() | {"terminated", "truncated"}

    def _check_window(self, seq_len: int, burn_in: int) -> None:
        if seq_len < 1 or burn_in < 0:
            raise BufferError(f"sequence buffer needs seq_len >= 1 and burn_in >= 0, got {seq_len}, {burn_in}")
        if burn_in + seq_len > self.slots_per_env:
            raise BufferError(
                f"burn_in + seq_len = {burn_in + seq_len} exceeds the {self.slots_per_env} slots per env stream "
                f"(capacity // num_envs); raise buffer.capacity"
            )

    def sample(self, batch_size: int, num_batches: int | None = None) -> tuple[Tree, np.ndarray]:
        """``sample_sequences`` with the configured ``seq_len`` and ``burn_in``.

        With ``num_batches=k`` (the runner's one-gather update phase) leaves are ``[k, B, L, ...]``, ``mask``
        ``[k, B, L]`` and indices ``[k, B, L]``; ``batch[j]`` is then one ordinary ``[B, L]`` batch.
        """
        return self.sample_sequences(batch_size, self.seq_len, self.burn_in, num_batches)

    def sample_sequences(
        self, batch_size: int, seq_len: int, burn_in: int = 0, num_batches: int | None = None
    ) -> tuple[Tree, np.ndarray]:
        """``(batch, indices [B, L])``: every stored field as ``[B, L, ...]`` plus ``mask [B, L]`` bool.

        Raises:
            BufferError: ``batch_size`` not positive or above the stored count, or the window longer than a stream.
        """
        self._check_batch_size(batch_size)
        self._check_window(seq_len, burn_in)
        length = burn_in + seq_len
        draws = batch_size * (num_batches or 1)
        T, N = self.slots_per_env, self.num_envs
        counts = np.maximum(self.size - length + 1, 0)  # [N] starts with a full window
        if counts.sum() == 0:
            counts = self.size.copy()  # early on: allow padded windows
        ends = np.cumsum(counts)
        u = self._uniform(int(ends[-1]), draws)  # [B]
        env = np.searchsorted(ends, u, side="right")  # [B]
        offset = u - (ends[env] - counts[env])  # [B] rows after the stream's oldest
        start = (self.cursor[env] - self.size[env] + offset) % T  # [B]
        steps = np.arange(length)  # [L]
        indices = ((start[:, None] + steps) % T) * N + env[:, None]  # [B, L]
        mask = self._window_mask(indices, start, env, length)  # [B, L]
        if num_batches is not None:
            indices = indices.reshape(num_batches, batch_size, length)
            mask = mask.reshape(num_batches, batch_size, length)
        batch = self._gather(indices, pooled=True)
        batch["mask"] = mask
        return batch, indices

    def _window_mask(self, indices: np.ndarray, start: np.ndarray, env: np.ndarray, length: int) -> Any:
        avail = (self.cursor[env] - 1 - start) % self.slots_per_env  # [B] transitions written after the start
        stored = np.arange(length) <= avail[:, None]  # [B, L]
        names = list(self._fields)
        ended = self._flat[names.index("terminated")][indices] | self._flat[names.index("truncated")][indices]
        ended_before = (np.cumsum(ended, axis=1) - ended) > 0  # [B, L]
        return stored & ~ended_before

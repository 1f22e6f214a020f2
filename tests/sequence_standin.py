"""A minimal sequence buffer for the DRQN tests until the replay helper's ``SequenceBuffer`` is on main.

Same interface: ``sample(batch_size) -> (batch [B, L, ...] + mask [B, L], indices [B, L])`` with
``L = burn_in + seq_len``; windows lie inside one env stream and start where a full window is stored;
``mask`` is False after the window's first episode end. Replace with ``cardio.buffers.SequenceBuffer`` once merged.
"""

from __future__ import annotations

import numpy as np

from cardio.buffers import CircularBuffer
from cardio.pytree import Tree


class StandInSequenceBuffer(CircularBuffer):
    def __init__(
        self, capacity: int, num_envs: int = 1, seed: int | None = None, *, seq_len: int = 8, burn_in: int = 0
    ):
        super().__init__(capacity, num_envs, seed)
        self.seq_len, self.burn_in = seq_len, burn_in

    def sample(self, batch_size: int, num_batches: int | None = None) -> tuple[Tree, np.ndarray]:
        assert num_batches is None
        return self.sample_sequences(batch_size, self.seq_len, self.burn_in)

    def sample_sequences(self, batch_size: int, seq_len: int, burn_in: int = 0) -> tuple[Tree, np.ndarray]:
        length, T, N = burn_in + seq_len, self.slots_per_env, self.num_envs
        starts_per_env = np.maximum(self.size - length + 1, 0)  # [N]
        assert starts_per_env.sum() > 0, "stand-in needs a full window stored"
        env = self.rng.choice(N, size=batch_size, p=starts_per_env / starts_per_env.sum())  # [B]
        offset = (self.rng.random(batch_size) * starts_per_env[env]).astype(np.int64)  # [B]
        start = (self.cursor[env] - self.size[env] + offset) % T
        indices = ((start[:, None] + np.arange(length)) % T) * N + env[:, None]  # [B, L]
        batch = self.get(indices)
        ended = batch["terminated"] | batch["truncated"]
        batch["mask"] = (np.cumsum(ended, axis=1) - ended) == 0  # True up to and including the first end
        return batch, indices

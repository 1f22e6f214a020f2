"""A small pure-Python model of the replay buffer: per-env lists and plain loops, no vectorisation.

It knows nothing of the buffer's layout beyond the documented flat-index rule (env e's j-th transition ever
written sits at row ``j % T``, flat index ``row * N + e``) and recomputes n-step windows, sequence masks and
next observations step by step, so the property tests compare two independent implementations.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class ReferenceBuffer:
    def __init__(self, capacity: int, num_envs: int, n_step: int = 1, gamma: float = 0.99) -> None:
        self.num_envs = num_envs
        self.rows = capacity // num_envs
        self.n_step = n_step
        self.gamma = gamma
        self.streams: list[list[dict[str, Any]]] = [[] for _ in range(num_envs)]

    def add(self, batch: dict[str, Any], mask: np.ndarray | None = None) -> None:
        for e in range(self.num_envs):
            if mask is None or mask[e]:
                self.streams[e].append({k: np.array(v[e]) for k, v in batch.items()})

    def stored(self, env: int) -> list[int]:
        """Positions (in the env's full history) still stored, oldest first."""
        total = len(self.streams[env])
        return list(range(max(0, total - self.rows), total))

    def flat(self, env: int, position: int) -> int:
        return (position % self.rows) * self.num_envs + env

    def locate(self, flat: int) -> tuple[int, int]:
        """(env, position) of a stored flat index."""
        row, env = divmod(int(flat), self.num_envs)
        for p in self.stored(env):
            if p % self.rows == row:
                return env, p
        raise KeyError(flat)

    def all_flat(self) -> list[int]:
        return [self.flat(e, p) for e in range(self.num_envs) for p in self.stored(e)]

    def __len__(self) -> int:
        return sum(len(self.stored(e)) for e in range(self.num_envs))

    def sample_at(self, flat: int) -> dict[str, Any]:
        """What the buffer's ``get([flat])`` must return (n-step applied)."""
        env, p = self.locate(flat)
        stream = self.streams[env]
        first = dict(stream[p])
        if self.n_step == 1:
            return first
        ret, k = 0.0, 0
        for j in range(self.n_step):
            if p + j >= len(stream):  # never past the newest transition (the cursor)
                break
            step = stream[p + j]
            ret += self.gamma**j * float(step["reward"])
            k += 1
            if step["terminated"] or step["truncated"]:
                break
        last = stream[p + k - 1]
        first.update(
            reward=ret,
            discount=self.gamma**k,
            next_obs=last["next_obs"],
            terminated=last["terminated"],
            truncated=last["truncated"],
        )
        return first

    def sequence_at(self, env: int, position: int, length: int) -> tuple[list[int], list[bool]]:
        """Flat indices and mask of the window starting at ``position`` of ``env``."""
        stream = self.streams[env]
        indices, mask, alive = [], [], True
        for j in range(length):
            q = position + j
            indices.append(self.flat(env, q))
            stored = q < len(stream)
            mask.append(alive and stored)
            if stored and (stream[q]["terminated"] or stream[q]["truncated"]):
                alive = False
            if not stored:
                alive = False
        return indices, mask

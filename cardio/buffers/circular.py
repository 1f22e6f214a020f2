"""CircularBuffer: a fixed-capacity FIFO of transitions stored as one pytree of preallocated arrays.

Legend: N env streams, T = capacity // N slots per stream, B batch size, k number of batches.

Storage keeps each env's stream apart: every leaf is ``[T, N, *field_shape]`` and env ``n`` writes only to
column ``n`` at its own cursor. One vector-env step is one ``add`` of an ``[N, ...]`` batch, written with one
fancy-indexed assignment per field (no per-transition Python loop). Streams stay time-contiguous, so n-step and
sequence logic can walk a column without ever mixing envs. A flat index ``i = t * N + n`` names one slot.

Per-env cursors matter when some rows are not transitions: under gymnasium's NEXT_STEP autoreset the step after
an episode end is a reset, and the gatherer passes ``mask=False`` for it; that env's column simply does not
advance. A rollout (on-policy) is the same class with ``T = n_steps``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from cardio.pytree import Tree, named_leaves, structure, tree_leaves, tree_map


class BufferError(ValueError):
    """A transition or request that does not fit the buffer; the message names the field and both shapes."""


def _storage_dtype(dtype: np.dtype) -> np.dtype:
    # float64 observations / rewards are halved to float32: networks train in float32 and memory is the limit.
    return np.dtype(np.float32) if dtype == np.float64 else dtype


class CircularBuffer:
    """Fixed-capacity replay storage, one column per env stream, oldest transitions overwritten first.

    Args:
        capacity: total transitions held (all envs together); rounded down to a multiple of ``num_envs``.
        num_envs: number of parallel env streams one ``add`` call carries (the vector env's ``num_envs``).
        seed: seed of the sampling generator (``None``: nondeterministic).
    """

    capacity: int  # total slots, T * N
    num_envs: int  # N, streams (columns)
    slots_per_env: int  # T, rows
    storage: Tree | None  # leaves [T, N, ...]; allocated from the first add
    cursor: np.ndarray  # [N] next row each stream writes
    size: np.ndarray  # [N] filled rows per stream (<= T)

    def __init__(self, capacity: int, num_envs: int = 1, seed: int | None = None) -> None:
        if capacity <= 0:
            raise BufferError(f"buffer capacity must be positive, got capacity={capacity}")
        if num_envs <= 0:
            raise BufferError(f"num_envs must be positive, got num_envs={num_envs}")
        if capacity < num_envs:
            raise BufferError(f"capacity={capacity} is smaller than num_envs={num_envs}: each env stream needs a slot")
        self.num_envs = num_envs
        self.slots_per_env = capacity // num_envs
        self.capacity = self.slots_per_env * num_envs
        self.storage = None
        self.cursor = np.zeros(num_envs, dtype=np.int64)
        self.size = np.zeros(num_envs, dtype=np.int64)
        self.rng = np.random.default_rng(seed)

    # ----------------------------------------------------------------------------------------------- writing
    def _allocate(self, batch: Tree) -> None:
        """Shape the storage from the first batch: leaf ``[N, *s]`` of dtype d -> ``[T, N, *s]``."""
        self.storage = tree_map(
            lambda x: np.zeros((self.slots_per_env, *np.shape(x)), dtype=_storage_dtype(np.asarray(x).dtype)),
            batch,
        )

    def _check(self, batch: Tree) -> None:
        assert self.storage is not None
        if structure(batch) != structure(self.storage):
            have = set(named_leaves(self.storage))
            got = set(named_leaves(batch))
            raise BufferError(
                "transition fields do not match the buffer's: "
                f"missing {sorted(have - got) or 'none'}, unexpected {sorted(got - have) or 'none'} "
                f"(the buffer was shaped by its first add with fields {sorted(have)})"
            )
        stored = named_leaves(self.storage)
        for name, leaf in named_leaves(batch).items():
            leaf = np.asarray(leaf)
            want = stored[name].shape[1:]
            if leaf.shape != want:
                raise BufferError(
                    f"field {name!r} has shape {leaf.shape}, expected {want} "
                    f"(leading dim = num_envs={self.num_envs}, then the field's own shape)"
                )
            if not np.can_cast(leaf.dtype, stored[name].dtype, casting="same_kind"):
                raise BufferError(
                    f"field {name!r} has dtype {leaf.dtype}, which cannot be stored as {stored[name].dtype}"
                )

    def add(self, batch: Tree, mask: np.ndarray | None = None) -> None:
        """Write one row per env: every leaf of ``batch`` is ``[N, ...]``.

        Args:
            batch: transition pytree with leading dim ``num_envs``.
            mask: optional ``[N]`` bool; rows where it is False are not transitions and are skipped
                (their stream's cursor does not move).
        """
        if self.storage is None:
            self._allocate(batch)
        self._check(batch)
        assert self.storage is not None
        T = self.slots_per_env
        if mask is None or bool(np.all(mask)):
            envs: Any = slice(None)
            rows = self.cursor
            same_row = bool(np.all(rows == rows[0]))
        else:
            envs = np.flatnonzero(mask)
            if envs.size == 0:
                return
            rows = self.cursor[envs]
            same_row = False
        if same_row:  # the common case: every stream at the same row -> one contiguous row write per field
            row = int(rows[0])
            for dst, src in zip(tree_leaves(self.storage), tree_leaves(batch), strict=True):
                dst[row] = src
        else:
            cols = np.arange(self.num_envs)[envs]
            for dst, src in zip(tree_leaves(self.storage), tree_leaves(batch), strict=True):
                dst[rows, cols] = np.asarray(src)[envs]
        self.cursor[envs] = (rows + 1) % T
        self.size[envs] = np.minimum(self.size[envs] + 1, T)

    def update(self, indices: np.ndarray, fields: Mapping[str, Any]) -> None:
        """Overwrite stored fields in place, e.g. ``update(idx, {"value": v})``; ``indices`` are flat."""
        if self.storage is None:
            raise BufferError("update() on an empty buffer: nothing is stored yet")
        rows, cols = np.divmod(np.asarray(indices), self.num_envs)
        for key, value in fields.items():
            if key not in self.storage:
                raise BufferError(f"update() names field {key!r}, not stored; stored: {sorted(self.storage)}")
            tree_map(lambda dst, src: dst.__setitem__((rows, cols), src), self.storage[key], value)

    def clear(self) -> None:
        """Forget every transition (storage stays allocated)."""
        self.cursor[:] = 0
        self.size[:] = 0

    # ----------------------------------------------------------------------------------------------- reading
    def __len__(self) -> int:
        return int(self.size.sum())

    def sample_indices(self, n: int) -> np.ndarray:
        """``n`` flat indices drawn uniformly (with replacement) over the stored transitions."""
        total = len(self)
        # A stream with more rows is proportionally likelier; row t is valid iff t < size[env].
        u = self.rng.integers(0, total, size=n)
        ends = np.cumsum(self.size)
        env = np.searchsorted(ends, u, side="right")
        row = u - (ends[env] - self.size[env])
        return row * self.num_envs + env

    def get(self, indices: np.ndarray) -> Tree:
        """The transitions at flat ``indices`` (any shape S): a pytree with leaves ``[*S, ...]``."""
        if self.storage is None:
            raise BufferError("get() on an empty buffer: nothing is stored yet")
        flat = np.asarray(indices).reshape(-1)
        shape = np.shape(indices)
        return tree_map(
            lambda leaf: np.take(leaf.reshape(self.capacity, *leaf.shape[2:]), flat, axis=0).reshape(
                *shape, *leaf.shape[2:]
            ),
            self.storage,
        )

    def sample(self, batch_size: int, num_batches: int | None = None) -> tuple[Tree, np.ndarray]:
        """Draw a uniform batch: ``(batch, indices)`` with leaves ``[B, ...]``.

        With ``num_batches=k`` draws k batches in one gather: leaves ``[k, B, ...]``, indices ``[k, B]``.
        """
        stored = len(self)
        if batch_size <= 0:
            raise BufferError(f"batch_size must be positive, got {batch_size}")
        if batch_size > stored:
            raise BufferError(
                f"cannot sample batch_size={batch_size} from {stored} stored transitions; "
                f"collect more first (raise runner learning_starts to at least {batch_size})"
            )
        shape = (batch_size,) if num_batches is None else (num_batches, batch_size)
        indices = self.sample_indices(int(np.prod(shape))).reshape(shape)
        return self.get(indices), indices

    def as_rollout(self) -> Tree:
        """The whole storage as a ``[T, N, ...]`` tree (views); for a full rollout buffer."""
        if self.storage is None or not bool(np.all(self.size == self.slots_per_env)):
            raise BufferError(
                f"as_rollout() needs every stream full ({self.slots_per_env} rows); have {self.size.tolist()}"
            )
        if not bool(np.all(self.cursor == 0)):
            raise BufferError("as_rollout() needs streams that start at row 0; clear() before each rollout")
        return self.storage

    # ----------------------------------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to restore the buffer exactly, sampling generator included."""
        return {
            "capacity": self.capacity,
            "num_envs": self.num_envs,
            "storage": self.storage,
            "cursor": self.cursor.copy(),
            "size": self.size.copy(),
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore from :meth:`state_dict`; refuses a state of another capacity or env count."""
        for key in ("capacity", "num_envs"):
            if state.get(key) != getattr(self, key):
                raise BufferError(
                    f"buffer state has {key}={state.get(key)}, this buffer has {key}={getattr(self, key)}"
                )
        self.storage = state["storage"]
        self.cursor = np.asarray(state["cursor"]).copy()
        self.size = np.asarray(state["size"]).copy()
        self.rng.bit_generator.state = state["rng"]

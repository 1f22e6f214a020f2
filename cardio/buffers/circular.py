"""CircularBuffer: a fixed-capacity FIFO of transitions stored as one pytree of preallocated arrays.

Legend: N env streams, T = capacity // N slots per stream, B batch size, k number of batches, n n-step window.

Storage keeps each env's stream apart: every leaf is ``[T, N, *field_shape]`` and env ``e`` writes only to
column ``e`` at its own cursor. One vector-env step is one ``add`` of an ``[N, ...]`` batch, written with one
row assignment per field (no per-transition Python loop). Streams stay time-contiguous, so n-step and
sequence logic can walk a column without ever mixing envs. A flat index ``i = t * N + e`` names one slot.

Per-env cursors matter when some rows are not transitions: under gymnasium's NEXT_STEP autoreset the step after
an episode end is a reset, and the gatherer passes ``mask=False`` for it; that env's column simply does not
advance. A rollout (on-policy) is the same class with ``T = n_steps``.

Options selected by config, so the runner never changes (docs/replay.md lists them):

* ``n_step`` / ``gamma`` / ``reduce``: n-step returns computed at sample time (``cardio/buffers/nstep.py`` has
  the maths). ``n_step=1`` is the plain buffer, bit for bit.
* ``memory_saving``: every observation is stored once; ``next_obs`` of row t is ``obs`` of row t+1 of the same
  stream, except for the stream's newest transition (kept in a per-stream ``[N, ...]`` tail) and for episode
  ends (terminated *or truncated*: the true final observation goes to a small side pool, one entry per stored
  episode end). So truncation bootstraps from the right state, which SB3 refuses to combine with its memory
  optimisation.

Batches are gathered into preallocated output arrays. Lifetime: a batch returned by ``sample`` is never
overwritten while anything still references one of its arrays (a view, a ``torch.from_numpy`` tensor, the
variable holding it): ``sample`` reuses an output block only when the buffer holds the last reference to it
(CPython reference counts), otherwise it uses another block or allocates a fresh one. ``num_batches=k`` writes
the k batches into one ``[k, B, ...]`` block. ``get`` always returns fresh arrays.
"""

from __future__ import annotations

import itertools
import json
import operator
import os
import sys
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import optree

from cardio.buffers.nstep import nstep_window
from cardio.checkpoint import atomic_write
from cardio.errors import ConfigError
from cardio.pytree import Tree, named_leaves, structure, tree_leaves, tree_map

_BOOL = np.dtype(bool)
_SHAPE_DTYPE = operator.attrgetter("shape", "dtype")
_ELLIPSES = itertools.repeat(Ellipsis)
MAX_OUT_BLOCKS = 4
VOID_ROW_BYTES = 64  # rows at least this large are gathered as opaque items (see _rows_view)
# Streams of at most this many rows cache one view per (row, field), ~100 bytes each, built on first write:
# writing through a cached view skips numpy's index parsing, the largest cost of a small add.
ROW_VIEW_LIMIT = 1 << 16  # pooled output blocks per batch shape; beyond that, batches still in use get fresh arrays
_FORMAT = "cardio-buffer-v1"


class BufferError(ConfigError):
    """A transition or request that does not fit the buffer; the message names the field and both shapes."""


AUTO = "auto"
"""``memory_saving: auto`` (the buffer configs' default): on for image observations in replay (off-policy)."""


def has_image(space: Any) -> bool:
    """Whether a (Dict / Tuple, nested too) observation space holds a uint8 Box of 2 or more dims: frames, whose
    size dominates a transition's, so storing each observation once pays."""
    spaces = getattr(space, "spaces", None)
    if isinstance(spaces, Mapping):
        return any(has_image(s) for s in spaces.values())
    if isinstance(spaces, tuple | list):
        return any(has_image(s) for s in spaces)
    shape = getattr(space, "shape", None) or ()
    return len(shape) >= 2 and np.dtype(getattr(space, "dtype", None) or np.float32) == np.uint8


def resolve_memory_saving(value: bool | str, observation_space: Any, on_policy: bool) -> bool:
    """``buffer.memory_saving`` as a bool: ``auto`` is true for image observations (:func:`has_image`) in a
    replay buffer, false for a rollout (which is read whole, next_obs included) and for flat observations.

    Raises:
        BufferError: a value other than true, false or ``"auto"``.
    """
    if isinstance(value, bool):
        return value
    if value != AUTO:
        raise BufferError(f"buffer.memory_saving must be true, false or {AUTO!r}, got {value!r}")
    return not on_policy and has_image(observation_space)


def _storage_dtype(dtype: np.dtype) -> np.dtype:
    # float64 observations / rewards are halved to float32: networks train in float32 and memory is the limit.
    return np.dtype(np.float32) if dtype == np.float64 else dtype


def _rows_view(flat: np.ndarray) -> np.ndarray:
    """``[C, *s]`` -> a ``[C]`` view of opaque items when rows are large: ``np.take`` then copies whole rows
    with one memcpy each, about 3x faster than its per-element path for 84x84x4 frames."""
    row_bytes = flat.itemsize * int(np.prod(flat.shape[1:], dtype=np.int64))
    if flat.ndim < 2 or row_bytes < VOID_ROW_BYTES:
        return flat
    return flat.reshape(flat.shape[0], -1).view(np.dtype((np.void, row_bytes))).reshape(-1)


def _items(rows: np.ndarray) -> np.ndarray:
    """``[C, *s]`` (C-contiguous) -> a ``[C]`` view of opaque items, one per row, whatever its size, so that a
    gather or scatter of whole rows copies each as one block."""
    if rows.ndim == 1:
        return rows
    flat = rows.reshape(rows.shape[0], -1)
    return flat.view(np.dtype((np.void, flat.shape[1] * flat.itemsize))).reshape(-1)


def _take(src: np.ndarray, index: np.ndarray, dst: np.ndarray) -> None:
    """``dst[:] = src[index]`` without a temporary; ``index`` is known valid (mode="clip" skips numpy's
    out-buffering for mode="raise")."""
    if src.dtype.kind == "V":
        dst = dst.reshape(len(index), -1).view(src.dtype).reshape(-1)
    src.take(index, axis=0, out=dst, mode="clip")


def _unreferenced(arrays: list[np.ndarray]) -> bool:
    # 3 = the list, the generator's loop variable and getrefcount's own argument: nobody else holds the array.
    return all(sys.getrefcount(a) <= 3 for a in arrays)


class CircularBuffer:
    """Fixed-capacity replay storage, one column per env stream, oldest transitions overwritten first.

    Args:
        capacity: total transitions held (all envs together); rounded down to a multiple of ``num_envs``.
        num_envs: number of parallel env streams one ``add`` call carries (the vector env's ``num_envs``).
        seed: seed of the sampling generator (``None``: nondeterministic).
        n_step: rewards summed per sample (1 = one-step transitions); batches then carry ``discount``.
        gamma: discount of the n-step sum; set it to the agent's gamma (``${agent.gamma}`` in the config).
        reduce: with ``n_step > 1``, False returns the unsummed reward window ``[B, n]`` and ``mask [B, n]``.
        memory_saving: store each observation once (``next_obs`` recovered from the next slot); halves the
            observation memory of image envs. ``"auto"`` (the configs' default): on when the first transition's
            observation holds uint8 frames (``[N, H, W]`` or more), as :func:`resolve_memory_saving` decides
            from the env's space (``cardio.build`` resolves it up front; a rollout is never memory-saving).
    """

    capacity: int  # total slots, T * N
    num_envs: int  # N, streams (columns)
    slots_per_env: int  # T, rows
    storage: Tree | None  # leaves [T, N, ...]; allocated from the first add (no next_obs when memory_saving)
    _cursor: np.ndarray  # [N] next row each stream writes (public as .cursor)
    _size: np.ndarray  # [N] filled rows per stream, <= T (public as .size)
    n_step: int  # n, rewards summed per sample
    gamma: float  # discount of the n-step sum
    reduce: bool  # sum the n-step window (True) or return it whole
    memory_saving: bool | str  # observations stored once ("auto": decided by the first transition)

    def __init__(
        self,
        capacity: int,
        num_envs: int = 1,
        seed: int | None = None,
        *,
        n_step: int = 1,
        gamma: float = 0.99,
        reduce: bool = True,
        memory_saving: bool | Literal["auto"] = False,
    ) -> None:
        if not isinstance(memory_saving, bool | np.bool_) and memory_saving != AUTO:
            raise BufferError(f"buffer.memory_saving must be true, false or {AUTO!r}, got {memory_saving!r}")
        if capacity <= 0:
            raise BufferError(f"buffer capacity must be positive, got capacity={capacity}")
        if num_envs <= 0:
            raise BufferError(f"num_envs must be positive, got num_envs={num_envs}")
        if capacity < num_envs:
            raise BufferError(f"capacity={capacity} is smaller than num_envs={num_envs}: each env stream needs a slot")
        if int(n_step) != n_step or n_step < 1:
            raise BufferError(f"buffer n_step must be an integer >= 1, got n_step={n_step}")
        if not 0.0 <= gamma <= 1.0:
            raise BufferError(f"buffer gamma must lie in [0, 1], got gamma={gamma}")
        self.num_envs = num_envs
        self.slots_per_env = capacity // num_envs
        self.capacity = self.slots_per_env * num_envs
        if n_step > self.slots_per_env:
            raise BufferError(
                f"n_step={n_step} exceeds the {self.slots_per_env} slots per env stream "
                f"(capacity={capacity} // num_envs={num_envs}); raise buffer.capacity"
            )
        if not reduce and n_step == 1:
            raise BufferError("buffer reduce=false returns an n-step reward window and needs n_step > 1, got n_step=1")
        self.n_step = int(n_step)
        self.gamma = float(gamma)
        self.reduce = bool(reduce)
        # "auto" until the first transition shows the observations (_allocate); a bool from then on
        self.memory_saving: bool | str = memory_saving if memory_saving == AUTO else bool(memory_saving)
        self.storage = None
        self._stale = False  # the fast add path moved _row/_filled without filling _cursor/_size yet
        self.cursor = np.zeros(num_envs, dtype=np.int64)
        self.size = np.zeros(num_envs, dtype=np.int64)
        self.rng = np.random.default_rng(seed)
        self._all_true = np.ones(num_envs, dtype=bool).tobytes()
        self._mask_shape = (num_envs,)
        self._has_write_hook = type(self)._written is not CircularBuffer._written
        self._reset_layout()

    @property
    def cursor(self) -> np.ndarray:
        """``[N]`` next row each stream writes."""
        if self._stale:
            self._sync()
        return self._cursor

    @cursor.setter
    def cursor(self, value: np.ndarray) -> None:
        self._cursor = value

    @property
    def size(self) -> np.ndarray:
        """``[N]`` filled rows per stream (<= T)."""
        if self._stale:
            self._sync()
        return self._size

    @size.setter
    def size(self, value: np.ndarray) -> None:
        self._size = value

    def _sync(self) -> None:
        # while aligned, every stream shares _row and _filled; the fast add path defers these two fills
        self._cursor.fill(self._row)
        self._size.fill(self._filled)
        self._stale = False

    # ----------------------------------------------------------------------------------------------- layout
    def _reset_layout(self) -> None:
        """Forget everything derived from the first batch (called before allocation and on load)."""
        self._spec: optree.PyTreeSpec | None = None  # structure of an added transition
        self._fields: dict[str, tuple[tuple[int, ...], np.dtype]] = {}  # input leaf -> ([N, *s], storage dtype)
        self._flat: list[np.ndarray] = []  # per input leaf: flat [T*N, *s] view of its storage (empty: next_obs)
        self._src: list[np.ndarray] = []  # the same as gather sources (_rows_view)
        self._next_of: list[int] = []  # per input leaf: index of its obs leaf if it is a next_obs leaf, else -1
        self._fast = False  # the flat-dict add path applies (see add)
        self._fast_get: Any = None  # batch -> its fields in storage order
        self._fast_sig: list[tuple[tuple[int, ...], np.dtype]] = []  # their ([N, *s], dtype)
        self._fast_dst: list[np.ndarray] = []  # their [T, N, *s] storage
        self._row_views: list[list[np.ndarray] | None] | None = None  # per row, its view of every field
        self._items: list[np.ndarray] | None = None  # per field: _flat as [T*N] opaque row items (add_block)
        self._is_next_obs: list[bool] = []  # per input leaf: part of next_obs
        self._obs_leaves: list[int] = []  # input leaf index of each obs leaf
        self._blocks: dict[tuple[int, ...], list[list[np.ndarray]]] = {}  # pooled output blocks by batch shape
        self._aligned = True  # every stream at the same cursor and size (the fast add path)
        self._full = False  # every stream holds slots_per_env rows (sizes stop changing)
        self._row = 0  # shared cursor while aligned
        self._filled = 0  # shared size while aligned
        # memory_saving: newest next_obs per stream, its done flag, and the side pool of final observations
        self._tail: list[np.ndarray] = []  # per obs leaf [N, *s]
        self._tail_done = np.zeros(self.num_envs, dtype=bool)
        self._pool: list[np.ndarray] = []  # per obs leaf [P, *s]
        self._final = np.full(0, -1, dtype=np.int64)  # [T*N] pool entry of a slot's final obs, -1 = none
        self._free: list[int] = []  # unused pool entries

    def _required_fields(self) -> set[str]:
        """Top-level fields the chosen options read."""
        need = {"obs", "next_obs", "terminated", "truncated"} if self.memory_saving else set()
        if self.n_step > 1:
            need |= {"reward", "next_obs", "terminated", "truncated"}
        return need

    def _allocate(self, batch: Tree) -> None:
        """Shape the storage from the first batch: leaf ``[N, *s]`` of dtype d -> ``[T, N, *s]``."""
        named = named_leaves(batch)
        if self.memory_saving == AUTO:  # image observations: uint8 leaves of [N, H, W] or more
            self.memory_saving = any(
                (n == "obs" or n.startswith("obs/")) and np.asarray(x).dtype == np.uint8 and np.ndim(x) >= 3
                for n, x in named.items()
            )
        for name, leaf in named.items():
            if np.ndim(leaf) == 0 or np.shape(leaf)[0] != self.num_envs:
                raise BufferError(
                    f"field {name!r} has shape {np.shape(leaf)}; every field needs leading dim num_envs={self.num_envs}"
                )
        need = self._required_fields()
        if not isinstance(batch, Mapping) or need - set(batch):
            have = sorted(batch) if isinstance(batch, Mapping) else type(batch).__name__
            raise BufferError(
                f"{type(self).__name__} with n_step={self.n_step}, memory_saving={self.memory_saving} needs fields "
                f"{sorted(need)}; the first transition has {have}"
            )
        if self.memory_saving and structure(batch["obs"]) != structure(batch["next_obs"]):
            raise BufferError("memory_saving needs obs and next_obs of the same structure")
        stored = {k: v for k, v in batch.items() if not (self.memory_saving and k == "next_obs")}
        self.storage = tree_map(
            lambda x: np.zeros((self.slots_per_env, *np.shape(x)), dtype=_storage_dtype(np.asarray(x).dtype)),
            stored,
        )
        self._spec = structure(batch)
        stored_named = named_leaves(self.storage)
        obs_names = [n for n in stored_named if n == "obs" or n.startswith("obs/")]
        for name, leaf in named.items():
            if self.memory_saving and (name == "next_obs" or name.startswith("next_obs/")):
                obs_name = name[len("next_") :]
                self._flat.append(np.empty(0))
                self._next_of.append(obs_names.index(obs_name))
                dtype = stored_named[obs_name].dtype
            else:
                dst = stored_named[name]
                self._flat.append(dst.reshape(self.capacity, *dst.shape[2:]))
                self._next_of.append(-1)
                dtype = dst.dtype
            self._fields[name] = (tuple(np.shape(leaf)), dtype)
            self._src.append(_rows_view(self._flat[-1]))
            self._is_next_obs.append(name == "next_obs" or name.startswith("next_obs/"))
            if name == "obs" or name.startswith("obs/"):
                self._obs_leaves.append(len(self._flat) - 1)
        if (
            isinstance(batch, dict)
            and not self.memory_saving
            and all(isinstance(v, np.ndarray) for v in batch.values())
        ):
            keys = list(self._fields)  # leaf order, the order of _flat (a flat dict's leaves are its keys)
            self._fast = True
            self._fast_get = operator.itemgetter(*keys) if len(keys) > 1 else lambda b: (b[keys[0]],)
            self._fast_sig = [(self._fields[k][0], self._fields[k][1]) for k in keys]
            self._fast_dst = [self.storage[k] for k in keys]
            if self.slots_per_env <= ROW_VIEW_LIMIT:
                self._row_views = [None] * self.slots_per_env
        if self.memory_saving:
            self._tail = [np.zeros_like(stored_named[n][0]) for n in obs_names]
            self._pool = [np.zeros((0, *stored_named[n].shape[2:]), stored_named[n].dtype) for n in obs_names]
            self._final = np.full(self.capacity, -1, dtype=np.int64)

    # ----------------------------------------------------------------------------------------------- writing
    def _check(self, batch: Tree) -> list[np.ndarray]:
        """Validate a transition against the first one; returns its leaves (as arrays) in leaf order."""
        leaves, spec = optree.tree_flatten(batch, none_is_leaf=False)
        if spec != self._spec:
            have = set(self._fields)
            got = set(named_leaves(batch))
            raise BufferError(
                "transition fields do not match the buffer's: "
                f"missing {sorted(have - got) or 'none'}, unexpected {sorted(got - have) or 'none'} "
                f"(the buffer was shaped by its first add with fields {sorted(have)})"
            )
        arrays = []
        for (name, (want, dtype)), leaf in zip(self._fields.items(), leaves, strict=True):
            leaf = np.asarray(leaf)
            if leaf.shape != want:
                raise BufferError(
                    f"field {name!r} has shape {leaf.shape}, expected {want} "
                    f"(leading dim = num_envs={self.num_envs}, then the field's own shape)"
                )
            if leaf.dtype != dtype and not np.can_cast(leaf.dtype, dtype, casting="same_kind"):
                raise BufferError(f"field {name!r} has dtype {leaf.dtype}, which cannot be stored as {dtype}")
            arrays.append(leaf)
        return arrays

    def add(self, batch: Tree, mask: np.ndarray | None = None) -> None:
        """Write one row per env: every leaf of ``batch`` is ``[N, ...]``.

        Args:
            batch: transition pytree with leading dim ``num_envs``.
            mask: optional ``[N]`` bool; rows where it is False are not transitions and are skipped
                (their stream's cursor does not move).

        Raises:
            BufferError: a field missing or extra, or a field's shape or dtype unlike the first transition's.
        """
        # The common case first (a flat dict of ndarrays of the stored dtypes), inlined: one C-level comparison
        # of every field's (shape, dtype) replaces _check. When every row is a transition and every stream is at
        # one row, it is one row copy per field through cached row views: this is what makes an 8-env add cost
        # about as much as one SB3 single-transition add (bench/buffer.py). Otherwise (NEXT_STEP reset rows
        # masked out, streams apart) the checked leaves go straight to the general write.
        if self._fast and type(batch) is dict and len(batch) == len(self._fast_sig):
            try:
                srcs = self._fast_get(batch)
                fits = list(map(_SHAPE_DTYPE, srcs)) == self._fast_sig
            except (KeyError, AttributeError):
                fits = False
            if fits:
                full = mask is None or (
                    type(mask) is np.ndarray
                    and mask.dtype is _BOOL
                    and mask.shape == self._mask_shape
                    and mask.tobytes() == self._all_true
                )
                if full and self._aligned:
                    self._add_row(srcs)
                    return
                if not full:
                    mask = self._checked_mask(mask)
                self._add_general(srcs, None if full else mask)
                return
        if self.storage is None:
            self._allocate(batch)
        if mask is not None:
            mask = self._checked_mask(mask)
        full = mask is None or mask.tobytes() == self._all_true
        self._add_general(self._check(batch), None if full else mask)

    def add_block(self, block: dict[str, np.ndarray], valid: np.ndarray | None = None) -> None:
        """Write ``k`` vector steps at once: exactly ``add({f: block[f][t]}, valid[t])`` for ``t = 0 .. k-1``,
        with one write per field instead of one per step (``Gatherer.collect`` stages its steps into blocks).

        Args:
            block: a flat dict of ``[k, N, ...]`` arrays, the fields of ``k`` transitions of the N env streams.
            valid: optional ``[k, N]`` bool; rows where it is False are not transitions (NEXT_STEP reset rows)
                and are skipped, their stream's cursor does not move.

        Raises:
            BufferError: as :meth:`add` for any of the ``k`` steps.
        """
        leaves = tree_leaves(block)
        k = len(leaves[0]) if leaves else 0
        if k == 0:
            return
        if self.storage is None:  # the first step shapes the storage, as its add would
            self.add(tree_map(operator.itemgetter(0), block), None if valid is None else valid[0])
            if k > 1:
                rest = tree_map(operator.itemgetter(slice(1, None)), block)
                self.add_block(rest, None if valid is None else valid[1:])
            return
        srcs = self._block_fields(block, k)
        if valid is not None:
            valid = np.asarray(valid)
            if valid.dtype != _BOOL or valid.shape != (k, self.num_envs):
                raise BufferError(f"add_block() valid must be bool of shape ({k}, {self.num_envs}), got {valid.shape}")
        if srcs is None or k > self.slots_per_env or self.memory_saving:
            # nested fields, an unusual dtype or memory_saving's bookkeeping: the step-by-step adds (same result)
            for t in range(k):
                self.add(tree_map(operator.itemgetter(t), block), None if valid is None else valid[t])
            return
        if valid is None or valid.all():
            if self._aligned:  # every stream at one row: a slice (or two, around the end) per field
                self._write_rows(srcs, k)
                return
            valid = np.ones((k, self.num_envs), dtype=bool)
        self._write_masked(srcs, valid)

    def _block_fields(self, block: dict[str, np.ndarray], k: int) -> list[np.ndarray] | None:
        """``block``'s fields in storage order, checked as :meth:`_check` checks a transition; ``None`` where only
        the step-by-step path applies (not the flat-dict layout)."""
        if not self._fast or type(block) is not dict or len(block) != len(self._fast_sig):
            return None
        try:
            srcs = [np.asarray(x) for x in self._fast_get(block)]
        except KeyError:
            return None
        for name, src, (want, dtype) in zip(self._fields, srcs, self._fast_sig, strict=True):
            if src.shape != (k, *want):
                raise BufferError(
                    f"field {name!r} has shape {src.shape[1:]}, expected {want} "
                    f"(leading dim = num_envs={self.num_envs}, then the field's own shape)"
                )
            if src.dtype != dtype and not np.can_cast(src.dtype, dtype, casting="same_kind"):
                raise BufferError(f"field {name!r} has dtype {src.dtype}, which cannot be stored as {dtype}")
        return srcs

    def _write_rows(self, srcs: list[np.ndarray], k: int) -> None:
        """Aligned streams, every row a transition: rows ``_row .. _row + k`` (mod T) of every field."""
        row, slots = self._row, self.slots_per_env
        first = min(k, slots - row)
        for dst, src in zip(self._fast_dst, srcs, strict=True):
            dst[row : row + first] = src[:first]
            if first < k:
                dst[: k - first] = src[first:]
        if self._has_write_hook:
            n = self.num_envs
            flat = (np.arange(row, row + k) % slots)[:, None] * n + np.arange(n)
            self._written(flat.reshape(-1))
        self._row = (row + k) % slots
        self._filled = min(self._filled + k, slots)
        self._stale = True

    def _write_masked(self, srcs: list[np.ndarray], valid: np.ndarray) -> None:
        """Each stream appends its valid rows of the block, in time order, at its own cursor: one gather and one
        scatter per field, rows moved as opaque items (``_items``: 4-10x faster than row-wise fancy indexing)."""
        n, slots = self.num_envs, self.slots_per_env
        cursor, size = self.cursor, self.size
        cols, steps = valid.T.nonzero()  # stream by stream, each in time order
        if cols.size == 0:
            return
        taken = np.bincount(cols, minlength=n)  # [N] rows each stream appends
        first = np.cumsum(taken) - taken  # where each stream's run starts in cols
        rows = np.arange(cols.size) - (first - cursor)[cols]  # cursor[e] + j for the j-th row of stream e
        if int((cursor + taken).max()) > slots:
            rows[rows >= slots] -= slots
        flat = rows * n + cols
        where = steps * n + cols  # the same rows in the block's [k * N] layout
        if self._items is None:
            self._items = [_items(dst) for dst in self._flat]
        for dst, src, (_, dtype) in zip(self._items, srcs, self._fast_sig, strict=True):
            dst[flat] = _items(np.ascontiguousarray(src, dtype=dtype).reshape(-1, *src.shape[2:])).take(where)
        if self._has_write_hook:
            self._written(flat)
        cursor[:] = (cursor + taken) % slots
        if not self._full:
            size[:] = np.minimum(size + taken, slots)
            self._full = bool(size.min() == slots)
        self._aligned = bool(np.all(cursor == cursor[0]) and np.all(size == size[0]))
        self._row, self._filled = int(cursor[0]), int(size[0])

    def _checked_mask(self, mask: Any) -> np.ndarray:
        mask = np.asarray(mask)
        if mask.dtype != _BOOL or mask.shape != self._mask_shape:
            raise BufferError(f"add() mask must be bool of shape ({self.num_envs},), got {mask.dtype} {mask.shape}")
        return mask

    def _add_row(self, srcs: Any) -> None:
        """Every stream writes row ``_row``: one row copy per field (leaves in ``_fast_dst`` order)."""
        row = self._row
        if self._row_views is not None:
            views = self._row_views[row]
            if views is None:
                views = self._row_views[row] = [dst[row] for dst in self._fast_dst]
            for _ in map(operator.setitem, views, _ELLIPSES, srcs):  # type: ignore[arg-type]
                pass
        else:
            for _ in map(operator.setitem, self._fast_dst, itertools.repeat(row), srcs):  # type: ignore[arg-type]
                pass
        if self._has_write_hook:
            self._written(slice(row * self.num_envs, (row + 1) * self.num_envs))
        self._row = 0 if row + 1 == self.slots_per_env else row + 1
        if self._filled < self.slots_per_env:
            self._filled += 1
        self._stale = True

    def _add_general(self, leaves: Any, mask: np.ndarray | None) -> None:
        """Write the rows where ``mask`` (``None``: all) at each stream's own cursor; ``leaves`` in leaf order."""
        if mask is None:
            envs: Any = slice(None)
            cols = np.arange(self.num_envs)
        else:
            cols = envs = mask.nonzero()[0]  # np.flatnonzero costs 5x more in its Python wrappers
            if cols.size == 0:
                return
        cursor, size = self.cursor, self.size
        rows = cursor[cols]
        flat = rows * self.num_envs + cols
        if self.memory_saving:
            self._save_final_obs(leaves, envs, cols, flat)
        for dst, next_of, src in zip(self._flat, self._next_of, leaves, strict=True):
            if next_of < 0:
                dst[flat] = src if mask is None else src.take(envs, axis=0)  # take: 4x a fancy index on [N, d]
        if self._has_write_hook:
            self._written(flat)
        cursor[cols] = (rows + 1) % self.slots_per_env
        if not self._full:  # once every stream is full it stays full (until clear or load)
            size[cols] = np.minimum(size[cols] + 1, self.slots_per_env)
            self._full = bool(size.min() == self.slots_per_env)
        if mask is None:
            self._aligned = bool(np.all(cursor == cursor[0]) and np.all(size == size[0]))
            self._row, self._filled = int(cursor[0]), int(size[0])
        else:
            # Some streams moved, others not: apart now (a rare realignment is caught by the next full add;
            # until then the general path, correct in every case, does the work).
            self._aligned = False

    def _save_final_obs(self, leaves: list[np.ndarray], envs: Any, cols: np.ndarray, flat: np.ndarray) -> None:
        """memory_saving bookkeeping for the rows about to be written at ``flat``."""
        names = list(self._fields)
        obs = [leaves[i] for i, n in enumerate(names) if n == "obs" or n.startswith("obs/")]
        nxt = [leaves[i] for i, j in enumerate(self._next_of) if j >= 0]
        done = (leaves[names.index("terminated")] | leaves[names.index("truncated")])[envs]
        # Continuity: obs[t+1] must equal next_obs[t] unless t ended its episode; anything else would be lost.
        cont = cols[(self.size[cols] > 0) & ~self._tail_done[cols]]
        for o, tail in zip(obs, self._tail, strict=True):
            if cont.size and not np.array_equal(o[cont], tail[cont]):
                raise BufferError(
                    "memory_saving needs obs of each step to equal next_obs of the env's previous step "
                    "unless that step ended its episode; got a different obs (set buffer.memory_saving=false)"
                )
        # Overwritten slots give their final obs back to the pool.
        old = self._final[flat]
        self._free.extend(old[old >= 0].tolist())
        self._final[flat] = -1
        for row_in_batch in np.flatnonzero(done):
            entry = self._take_pool_entry()
            for pool, src in zip(self._pool, nxt, strict=True):
                pool[entry] = src[cols[row_in_batch]]
            self._final[flat[row_in_batch]] = entry
        for tail, src in zip(self._tail, nxt, strict=True):
            tail[cols] = src[cols]
        self._tail_done[cols] = done

    def _take_pool_entry(self) -> int:
        if not self._free:
            old = self._pool[0].shape[0]
            new = max(8, 2 * old)
            self._pool = [np.concatenate([p, np.zeros((new - old, *p.shape[1:]), p.dtype)]) for p in self._pool]
            self._free.extend(range(new - 1, old - 1, -1))
        return self._free.pop()

    def _written(self, flat: np.ndarray | slice) -> None:
        """Hook: the slots at ``flat`` now hold new transitions (prioritized replay sets their priority)."""

    def update(self, indices: np.ndarray, fields: Mapping[str, Any]) -> None:
        """Overwrite stored fields in place, e.g. ``update(idx, {"value": v})``; ``indices`` are flat, any shape S.

        Nested fields may be given in part: ``{"obs": {"pos": p}}`` leaves ``obs/pixels`` alone.

        Raises:
            BufferError: the buffer is empty, a field is not stored (``next_obs`` under memory_saving), or a
                value's shape is not ``[*S, *field_shape]``.
        """
        if self.storage is None:
            raise BufferError("update() on an empty buffer: nothing is stored yet")
        flat = np.asarray(indices).reshape(-1)
        shape = np.shape(indices)

        def write(stored: Any, given: Mapping[str, Any], prefix: str) -> None:
            for key, value in given.items():
                name = f"{prefix}{key}"
                if not isinstance(stored, Mapping) or key not in stored:
                    have = sorted(stored) if isinstance(stored, Mapping) else []
                    raise BufferError(f"update() names field {name!r}, not stored; stored here: {have}")
                if isinstance(value, Mapping):
                    write(stored[key], value, f"{name}/")
                    continue
                if structure(value) != structure(stored[key]):
                    raise BufferError(f"update() field {name!r} does not have the stored field's structure")
                for dst, src in zip(tree_leaves(stored[key]), tree_leaves(value), strict=True):
                    src = np.asarray(src)
                    want = (*shape, *dst.shape[2:])
                    if src.shape != want:
                        raise BufferError(f"update() field {name!r} has shape {src.shape}, expected {want}")
                    dst.reshape(self.capacity, *dst.shape[2:])[flat] = src.reshape(flat.size, *dst.shape[2:])

        write(self.storage, fields, "")

    def truncate_streams(self) -> np.ndarray:
        """End each stream's unfinished episode at its newest transition, marked ``truncated``: the env under the
        stream was reset (a resume that could not restore the env's state), so the stream's next row starts
        another episode. The cut transition keeps its true ``next_obs`` and ``terminated=False``, so its target
        still bootstraps; n-step windows and sequences stop there instead of reading into the next episode, and
        under ``memory_saving`` its next_obs moves from the tail to the final-observation pool, as at any
        episode end.

        Returns:
            ``[N]`` bool: the streams whose newest transition was marked (empty streams, finished episodes and a
            storage without ``terminated`` / ``truncated`` fields are left as they are).
        """
        marked = np.zeros(self.num_envs, dtype=bool)
        if self.storage is None or not {"terminated", "truncated"} <= set(self.storage):
            return marked
        terminated, truncated = (self.storage[k].reshape(-1) for k in ("terminated", "truncated"))  # views
        cols = np.flatnonzero(self.size > 0)
        flat = ((self.cursor[cols] - 1) % self.slots_per_env) * self.num_envs + cols
        open_ = ~(terminated[flat] | truncated[flat])
        cols, flat = cols[open_], flat[open_]
        truncated[flat] = True
        if self.memory_saving:
            for col, slot in zip(cols.tolist(), flat.tolist(), strict=True):
                entry = self._take_pool_entry()
                for pool, tail in zip(self._pool, self._tail, strict=True):
                    pool[entry] = tail[col]
                self._final[slot] = entry
            self._tail_done[cols] = True
        marked[cols] = True
        return marked

    def clear(self) -> None:
        """Forget every transition (storage stays allocated)."""
        self._stale = False
        self._cursor[:] = 0
        self._size[:] = 0
        self._aligned, self._row, self._filled, self._full = True, 0, 0, False
        self._final[:] = -1
        self._free = list(range(len(self._pool[0]) - 1, -1, -1)) if self._pool else []
        self._tail_done[:] = False

    @property
    def nbytes(self) -> int:
        """Bytes held by storage and bookkeeping (memory_saving's tail, final-obs pool and slot map included)."""
        arrays = [*tree_leaves(self.storage), *self._tail, *self._pool, self._final, self.cursor, self.size]
        return int(sum(a.nbytes for a in arrays))

    # ----------------------------------------------------------------------------------------------- reading
    def __len__(self) -> int:
        return int(self.size.sum())

    def _uniform(self, high: int, n: int) -> np.ndarray:
        """``n`` integers uniform in ``[0, high)``: ``floor(U * high)`` with 53-bit U, twice as fast as
        ``Generator.integers`` for a batch; the bias is below ``high / 2**53``."""
        return np.minimum((self.rng.random(n) * high).astype(np.int64), high - 1)

    def sample_indices(self, n: int) -> np.ndarray:
        """``n`` flat indices drawn uniformly (with replacement) over the stored transitions."""
        if self._aligned:  # rows [0, filled) of every stream are stored: flat indices [0, filled * N)
            return self._uniform(self._filled * self.num_envs, n)
        # A stream with more rows is proportionally likelier; row t is valid iff t < size[env].
        u = self._uniform(len(self), n)
        ends = np.cumsum(self.size)
        env = np.searchsorted(ends, u, side="right")
        row = u - (ends[env] - self.size[env])
        return row * self.num_envs + env

    def get(self, indices: np.ndarray) -> Tree:
        """The samples at flat ``indices`` (any shape S), as ``sample`` would return them: leaves ``[*S, ...]``.

        With ``n_step > 1`` these are n-step samples (``discount`` added); arrays are fresh, never pooled.
        """
        if self.storage is None:
            raise BufferError("get() on an empty buffer: nothing is stored yet")
        return self._gather(np.asarray(indices), pooled=False)

    def _check_batch_size(self, batch_size: int) -> None:
        stored = len(self)
        if batch_size <= 0:
            raise BufferError(f"batch_size must be positive, got {batch_size}")
        if batch_size > stored:
            raise BufferError(
                f"cannot sample batch_size={batch_size} from {stored} stored transitions; "
                f"collect more first (raise runner learning_starts to at least {batch_size})"
            )

    def sample(self, batch_size: int, num_batches: int | None = None) -> tuple[Tree, np.ndarray]:
        """Draw a uniform batch: ``(batch, indices)`` with leaves ``[B, ...]``.

        With ``num_batches=k`` draws k batches in one gather: leaves ``[k, B, ...]``, indices ``[k, B]``.

        Raises:
            BufferError: ``batch_size`` not positive or larger than the number of stored transitions.
        """
        self._check_batch_size(batch_size)
        shape = (batch_size,) if num_batches is None else (num_batches, batch_size)
        indices = self.sample_indices(batch_size * (num_batches or 1)).reshape(shape)
        return self._gather(indices, pooled=True), indices

    # ----------------------------------------------------------------------------------------------- gathering
    def _out_block(self, shape: tuple[int, ...]) -> list[np.ndarray]:
        """Output arrays for a batch of ``shape``: a pooled block nobody else references, or a fresh one."""
        blocks = self._blocks.setdefault(shape, [])
        for block in blocks:
            if _unreferenced(block):
                return block
        block = [np.empty((*shape, *want[1:]), dtype) for want, dtype in self._fields.values()]
        if len(blocks) < MAX_OUT_BLOCKS:
            blocks.append(block)
        return block

    def _gather(self, indices: np.ndarray, pooled: bool) -> Tree:
        """Every field at ``indices`` (next_obs at the n-step bootstrap slot), written into output arrays."""
        shape = indices.shape
        flat = indices.reshape(-1)
        b = flat.size
        if pooled:
            out = self._out_block(shape)
        else:
            out = [np.empty((*shape, *want[1:]), dtype) for want, dtype in self._fields.values()]
        extras: dict[str, np.ndarray] = {}
        boot = flat
        if self.n_step > 1:
            names = list(self._fields)
            i_rew, i_term, i_trunc = names.index("reward"), names.index("terminated"), names.index("truncated")
            done = self._flat[i_term] | self._flat[i_trunc]  # [T*N]
            win = nstep_window(
                flat, self.cursor, self.num_envs, self.slots_per_env, self._flat[i_rew], done, self.n_step
            )
            boot = win.last
            extras["discount"] = (self.gamma**win.k).astype(np.float32).reshape(shape)
            if self.reduce:
                out[i_rew].reshape(b)[:] = win.returns(self.gamma)
            else:  # the window replaces the [B] reward array in this batch only, never in the pooled block
                out = list(out)
                out[i_rew] = win.rewards.astype(out[i_rew].dtype).reshape(*shape, self.n_step)
                extras["mask"] = win.summed.reshape(*shape, self.n_step)
            _take(self._flat[i_term], boot, out[i_term].reshape(b))
            _take(self._flat[i_trunc], boot, out[i_trunc].reshape(b))
            skip = {i_rew, i_term, i_trunc}
        else:
            skip = set()
        next_rows = None
        for i, (src, next_of, dst) in enumerate(zip(self._src, self._next_of, out, strict=True)):
            if i in skip:
                continue
            dst = dst.reshape(b, *dst.shape[len(shape) :])
            if next_of >= 0:  # memory_saving: next_obs from the next slot, the tail or the final-obs pool
                if next_rows is None:
                    next_rows = self._next_slots(boot)
                self._gather_next_obs(next_of, next_rows, dst)
            elif self.n_step > 1 and self._is_next_obs[i]:
                _take(src, boot, dst)
            else:
                _take(src, flat, dst)
        batch: dict[str, Any] = optree.tree_unflatten(self._spec, out)  # type: ignore[arg-type,assignment]
        batch.update(extras)
        return batch

    def _next_slots(self, flat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """memory_saving: where the next_obs of each slot lives (next slot / tail / pool)."""
        rows, cols = np.divmod(flat, self.num_envs)
        following = ((rows + 1) % self.slots_per_env) * self.num_envs + cols
        latest = np.flatnonzero(rows == (self.cursor[cols] - 1) % self.slots_per_env)
        entry = self._final[flat]
        final = np.flatnonzero(entry >= 0)
        return following, latest, cols[latest], final, entry[final]

    def _gather_next_obs(self, obs_leaf: int, where: tuple[np.ndarray, ...], dst: np.ndarray) -> None:
        following, latest, latest_cols, final, entries = where
        _take(self._src[self._obs_leaves[obs_leaf]], following, dst)
        if latest.size:
            dst[latest] = self._tail[obs_leaf][latest_cols]
        if final.size:
            dst[final] = self._pool[obs_leaf][entries]

    def as_rollout(self, rows: int | None = None) -> Tree:
        """The first ``rows`` rows of every stream as a ``[rows, N, ...]`` tree (views); for a rollout buffer.

        Args:
            rows: rows per stream, every stream holding exactly that many (``None``: the full ``T``; fewer for
                the last rollout of a run, cut to the steps left).
        """
        rows = self.slots_per_env if rows is None else rows
        if self.storage is None or not bool(np.all(self.size == rows)):
            raise BufferError(f"as_rollout() needs every stream at {rows} rows; have {self.size.tolist()}")
        if not bool(np.all(self.cursor == rows % self.slots_per_env)):
            raise BufferError("as_rollout() needs streams that start at row 0; clear() before each rollout")
        if self.memory_saving:
            raise BufferError("as_rollout() does not rebuild next_obs; use memory_saving=false for rollouts")
        return self.storage if rows == self.slots_per_env else tree_map(lambda x: x[:rows], self.storage)

    # ----------------------------------------------------------------------------------------------- state
    def _options(self) -> dict[str, Any]:
        """Settings a saved state must match to be loaded (class included)."""
        return {
            "kind": type(self).__name__,
            "capacity": self.capacity,
            "num_envs": self.num_envs,
            "n_step": self.n_step,
            "memory_saving": self.memory_saving,
        }

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to restore the buffer exactly, sampling generator included."""
        return {
            **self._options(),
            "storage": self.storage,
            "cursor": self.cursor.copy(),
            "size": self.size.copy(),
            "rng": self.rng.bit_generator.state,
            "tail": self._tail,
            "tail_done": self._tail_done.copy(),
            "pool": self._pool,
            "final": self._final.copy(),
            "free": list(self._free),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore from :meth:`state_dict`; refuses a state of another class, capacity, env count or option.

        Raises:
            BufferError: the state does not match this buffer (the buffer is left untouched).
        """
        for key, value in self._options().items():
            required = key in ("capacity", "num_envs")
            if key == "memory_saving" and value == AUTO:
                continue  # not decided yet: the saved buffer's choice is taken below
            if (key in state and state[key] != value) or (required and key not in state):
                raise BufferError(f"buffer state has {key}={state.get(key)}, this buffer has {key}={value}")
        self._validate_state(state)
        storage = state["storage"]
        cursor = np.asarray(state["cursor"], dtype=np.int64).copy()
        size = np.asarray(state["size"], dtype=np.int64).copy()
        if cursor.shape != (self.num_envs,) or size.shape != (self.num_envs,):
            raise BufferError(f"buffer state has cursor/size of shape {cursor.shape}, expected ({self.num_envs},)")
        if self.storage is not None and storage is not None and structure(storage) != structure(self.storage):
            raise BufferError(
                f"buffer state stores fields {sorted(named_leaves(storage))}, "
                f"this buffer stores {sorted(named_leaves(self.storage))}"
            )
        if storage is not None:
            for name, leaf in named_leaves(storage).items():
                if np.shape(leaf)[:2] != (self.slots_per_env, self.num_envs):
                    raise BufferError(f"buffer state field {name!r} has shape {np.shape(leaf)}, expected [T, N, ...]")
        rng = np.random.default_rng()
        rng.bit_generator.state = state["rng"]
        # Validated: rebuild the layout from a stored transition, then put the saved arrays in place.
        self._reset_layout()
        self.storage = None
        self._stale = False
        self.cursor, self.size, self.rng = cursor, size, rng
        if self.memory_saving == AUTO:
            self.memory_saving = bool(state.get("memory_saving", False)) if storage is not None else AUTO
        if storage is not None:
            template = {k: tree_map(lambda x: x[0], v) for k, v in storage.items()}
            if self.memory_saving:
                template["next_obs"] = template["obs"]
            self._allocate(template)
            assert self.storage is not None
            for dst, src in zip(tree_leaves(self.storage), tree_leaves(storage), strict=True):
                dst[...] = src
            if self.memory_saving:
                self._tail = [np.array(t) for t in state["tail"]]
                self._tail_done = np.asarray(state["tail_done"], dtype=bool).copy()
                self._pool = [np.array(p) for p in state["pool"]]
                self._final = np.asarray(state["final"], dtype=np.int64).copy()
                self._free = [int(x) for x in state["free"]]
        self._aligned = bool(np.all(cursor == cursor[0]) and np.all(size == size[0]))
        self._row, self._filled = int(cursor[0]), int(size[0])
        self._full = bool(size.min() == self.slots_per_env)
        self._after_load(state)

    def _validate_state(self, state: Mapping[str, Any]) -> None:
        """Hook: subclasses refuse a state of theirs that does not fit, before anything is changed."""

    def _after_load(self, state: Mapping[str, Any]) -> None:
        """Hook: subclasses restore their own state (priorities) after the storage is back."""

    # ----------------------------------------------------------------------------------------------- files
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the buffer to ``path`` (an ``.npz`` archive) atomically: a temporary file, then a rename."""
        state = self.state_dict()
        arrays: dict[str, np.ndarray] = {}

        def encode(x: Any) -> Any:  # JSON skeleton; arrays go to the archive as "a<i>"
            if isinstance(x, np.ndarray):
                arrays[f"a{len(arrays)}"] = x
                return {"__array__": f"a{len(arrays) - 1}"}
            if isinstance(x, dict):
                return {"__dict__": [[k, encode(v)] for k, v in x.items()]}
            if isinstance(x, tuple):
                return {"__tuple__": [encode(v) for v in x]}
            if isinstance(x, list):
                return [encode(v) for v in x]
            if isinstance(x, np.generic):
                return x.item()
            return x

        meta = json.dumps({"format": _FORMAT, "state": encode(state)})
        return atomic_write(path, lambda f: np.savez(f, __meta__=np.array(meta), **arrays))  # type: ignore[arg-type]

    def load(self, path: str | os.PathLike[str]) -> None:
        """Restore a buffer written by :meth:`save`.

        Raises:
            BufferError: no such file, a corrupt or foreign file, or a buffer of other settings; the buffer is
                left untouched.
        """
        path = Path(path)
        if not path.is_file():
            raise BufferError(f"no buffer file at {path}")
        try:
            with np.load(path, allow_pickle=False) as archive:
                meta = json.loads(str(archive["__meta__"]))
                if meta.get("format") != _FORMAT:
                    raise BufferError(f"{path} is not a cardio buffer file (format {meta.get('format')!r})")
                arrays = {k: archive[k] for k in archive.files if k != "__meta__"}

            def decode(x: Any) -> Any:
                if isinstance(x, dict) and "__array__" in x:
                    return arrays[x["__array__"]]
                if isinstance(x, dict) and "__dict__" in x:
                    return {k: decode(v) for k, v in x["__dict__"]}
                if isinstance(x, dict) and "__tuple__" in x:
                    return tuple(decode(v) for v in x["__tuple__"])
                if isinstance(x, list):
                    return [decode(v) for v in x]
                return x

            state = decode(meta["state"])
        except BufferError:
            raise
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
            raise BufferError(f"buffer file {path} is corrupt or not a cardio buffer: {exc}") from exc
        self.load_state_dict(state)

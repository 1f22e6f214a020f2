"""Stream storage: the per-stream circular arrays under every buffer, and their (block) writes.

Legend: N env streams (the vector env's copies), T = capacity // N rows per stream, k vector steps in a block.

Every stored field is one preallocated array ``[T, N, *field_shape]``, shaped by the first transition; env ``e``
writes only column ``e``, at its own cursor, so each stream stays time-contiguous and n-step, sequence and
memory-saving logic can walk a column without ever mixing envs. A flat index ``i = t * N + e`` names one slot.

* ``cursor[e]`` is the next row stream e writes, ``size[e] <= T`` the rows it holds; the oldest row is
  overwritten first. Rows that are not transitions (gymnasium's NEXT_STEP reset rows, ``mask=False``) are
  skipped: that stream's cursor does not move.
* ``add(batch [N, ...], mask [N])`` writes one vector step with one assignment per field; ``add_block(block
  [k, N, ...], valid [k, N])`` writes k of them at once, exactly as k ``add`` calls would (slices while every
  stream is at one row, else one gather and one scatter per field, rows moved as opaque items).
* ``memory_saving`` keeps each observation once (``cardio/buffers/obs_pool.py`` has the rule).

Reading (sampling, n-step windows, sequences, priorities) lives above, in ``CircularBuffer`` and its subclasses.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import optree

from cardio.buffers.obs_pool import AUTO, FinalObsPool
from cardio.buffers.rows import row_items, rows_view, storage_dtype
from cardio.errors import BufferError
from cardio.pytree import Tree, named_leaves, structure, tree_leaves, tree_map

_BOOL = np.dtype(bool)
_SHAPE_DTYPE = operator.attrgetter("shape", "dtype")
_ELLIPSES = itertools.repeat(Ellipsis)
# Streams of at most this many rows cache one view per (row, field), ~100 bytes each, built on first write:
# writing through a cached view skips numpy's index parsing, the largest cost of a small add.
ROW_VIEW_LIMIT = 1 << 16


class StreamStorage:
    """Fixed-capacity per-stream storage with (block) writes; the base of every cardio buffer.

    Args:
        capacity: total transitions held (all envs together); rounded down to a multiple of ``num_envs``.
        num_envs: number of parallel env streams one ``add`` call carries (the vector env's ``num_envs``).
        memory_saving: store each observation once (``cardio/buffers/obs_pool.py``); ``"auto"``: on when the
            first transition's observation holds uint8 frames (``[N, H, W]`` or more).
    """

    capacity: int  # total slots, T * N
    num_envs: int  # N, streams (columns)
    slots_per_env: int  # T, rows
    storage: Tree | None  # leaves [T, N, ...]; allocated from the first add (no next_obs when memory_saving)
    _cursor: np.ndarray  # [N] next row each stream writes (public as .cursor)
    _size: np.ndarray  # [N] filled rows per stream, <= T (public as .size)
    memory_saving: bool | str  # observations stored once ("auto": decided by the first transition)
    _obs_pool: FinalObsPool  # memory_saving's tail and final-observation pool (empty otherwise)

    def __init__(self, capacity: int, num_envs: int = 1, memory_saving: bool | Literal["auto"] = False) -> None:
        if not isinstance(memory_saving, bool | np.bool_) and memory_saving != AUTO:
            raise BufferError(f"buffer.memory_saving must be true, false or {AUTO!r}, got {memory_saving!r}")
        if capacity <= 0:
            raise BufferError(f"buffer capacity must be positive, got capacity={capacity}")
        if num_envs <= 0:
            raise BufferError(f"num_envs must be positive, got num_envs={num_envs}")
        if capacity < num_envs:
            raise BufferError(f"capacity={capacity} is smaller than num_envs={num_envs}: each env stream needs a slot")
        self.num_envs = num_envs
        self.slots_per_env = capacity // num_envs
        self.capacity = self.slots_per_env * num_envs
        # "auto" until the first transition shows the observations (_allocate); a bool from then on
        self.memory_saving: bool | str = memory_saving if memory_saving == AUTO else bool(memory_saving)
        self.storage = None
        self._stale = False  # the fast add path moved _row/_filled without filling _cursor/_size yet
        self.cursor = np.zeros(num_envs, dtype=np.int64)
        self.size = np.zeros(num_envs, dtype=np.int64)
        self._all_true = np.ones(num_envs, dtype=bool).tobytes()
        self._mask_shape = (num_envs,)
        self._has_write_hook = type(self)._written is not StreamStorage._written
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
        self._src: list[np.ndarray] = []  # the same as gather sources (rows_view)
        self._next_of: list[int] = []  # per input leaf: index of its obs leaf if it is a next_obs leaf, else -1
        self._fast = False  # the flat-dict add path applies (see add)
        self._fast_get: Any = None  # batch -> its fields in storage order
        self._fast_sig: list[tuple[tuple[int, ...], np.dtype]] = []  # their ([N, *s], dtype)
        self._fast_dst: list[np.ndarray] = []  # their [T, N, *s] storage
        self._row_views: list[list[np.ndarray] | None] | None = None  # per row, its view of every field
        self._item_views: list[np.ndarray] | None = None  # per field: _flat as [T*N] opaque row items (add_block)
        self._is_next_obs: list[bool] = []  # per input leaf: part of next_obs
        self._obs_leaves: list[int] = []  # input leaf index of each obs leaf
        self._aligned = True  # every stream at the same cursor and size (the fast add path)
        self._full = False  # every stream holds slots_per_env rows (sizes stop changing)
        self._row = 0  # shared cursor while aligned
        self._filled = 0  # shared size while aligned
        self._obs_pool = FinalObsPool(self.num_envs)  # memory_saving: newest next_obs and final observations

    def _required_fields(self) -> set[str]:
        """Top-level fields the chosen options read (readers add theirs)."""
        return {"obs", "next_obs", "terminated", "truncated"} if self.memory_saving else set()

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
                f"{type(self).__name__} with {self._describe_options()} needs fields "
                f"{sorted(need)}; the first transition has {have}"
            )
        if self.memory_saving and structure(batch["obs"]) != structure(batch["next_obs"]):
            raise BufferError("memory_saving needs obs and next_obs of the same structure")
        stored = {k: v for k, v in batch.items() if not (self.memory_saving and k == "next_obs")}
        self.storage = tree_map(
            lambda x: np.zeros((self.slots_per_env, *np.shape(x)), dtype=storage_dtype(np.asarray(x).dtype)),
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
            self._src.append(rows_view(self._flat[-1]))
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
            self._obs_pool.allocate([stored_named[n] for n in obs_names], self.capacity)

    def _describe_options(self) -> str:
        """The options that decide the required fields, for messages."""
        return f"memory_saving={self.memory_saving}"

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
        longest = k if valid is None else int(valid.sum(axis=0).max())  # rows the fullest stream appends
        if srcs is None or longest > self.slots_per_env or self.memory_saving:
            # nested fields, an unusual dtype, memory_saving's bookkeeping or a stream that would wrap onto its own
            # new rows: the step-by-step adds (same result)
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
        scatter per field, rows moved as opaque items (``row_items``: 4-10x faster than row-wise fancy indexing)."""
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
        if self._item_views is None:
            self._item_views = [row_items(dst) for dst in self._flat]
        for dst, src, (_, dtype) in zip(self._item_views, srcs, self._fast_sig, strict=True):
            dst[flat] = row_items(np.ascontiguousarray(src, dtype=dtype).reshape(-1, *src.shape[2:])).take(where)
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
        if not self._obs_pool.continues(obs, cols, self.size):  # obs[t+1] must be next_obs[t] within an episode
            raise BufferError(
                "memory_saving needs obs of each step to equal next_obs of the env's previous step "
                "unless that step ended its episode; got a different obs (set buffer.memory_saving=false)"
            )
        self._obs_pool.record(nxt, done, cols, flat)

    def _written(self, flat: np.ndarray | slice) -> None:
        """Hook: the slots at ``flat`` now hold new transitions (prioritized replay sets their priority)."""

    def clear(self) -> None:
        """Forget every transition (storage stays allocated)."""
        self._stale = False
        self._cursor[:] = 0
        self._size[:] = 0
        self._aligned, self._row, self._filled, self._full = True, 0, 0, False
        self._obs_pool.clear()

    @property
    def nbytes(self) -> int:
        """Bytes held by storage and bookkeeping (memory_saving's tail, final-obs pool and slot map included)."""
        arrays = [*tree_leaves(self.storage), *self._obs_pool.arrays, self.cursor, self.size]
        return int(sum(a.nbytes for a in arrays))

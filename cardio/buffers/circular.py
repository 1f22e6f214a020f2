"""CircularBuffer: the replay buffer every schedule stores into, and the reading rules on top of its storage.

Legend: N env streams, T = capacity // N slots per stream, B batch size, k number of batches, n n-step window.

The storage (``cardio/buffers/storage.py``) keeps one time-contiguous column per env stream, written one vector
step (``add``) or one block of steps (``add_block``) at a time; a flat index ``i = t * N + e`` names one slot.
This class reads it:

* ``sample(B)`` draws B stored slots uniformly with replacement (``num_batches=k``: k batches in one gather,
  leaves ``[k, B, ...]``); ``get(indices)`` reads given slots; ``as_rollout(rows)`` hands an on-policy update
  the whole ``[T, N]`` rollout (a rollout is the same class with ``T = n_steps``).
* ``n_step`` / ``gamma`` / ``reduce``: n-step returns computed at sample time (``cardio/buffers/nstep.py`` has
  the maths). ``n_step=1`` is the plain buffer, bit for bit.
* ``memory_saving``: ``next_obs`` recovered from the next slot, the stream's tail or the final-observation pool
  (``cardio/buffers/obs_pool.py``).

Batches are gathered into preallocated output arrays. Lifetime: a batch returned by ``sample`` is never
overwritten while anything still references one of its arrays (a view, a ``torch.from_numpy`` tensor, the
variable holding it): ``sample`` reuses an output block only when the buffer holds the last reference to it
(CPython reference counts), otherwise it uses another block or allocates a fresh one. ``get`` always returns
fresh arrays. Sampling never writes the storage; ``add``, ``add_block`` and ``update`` do. Sequences and
prioritized replay read on top of this class (``sequence.py``, ``prioritized.py``); the docs list the options
(docs/replay.md).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import optree

from cardio.buffers import files
from cardio.buffers.nstep import nstep_window
from cardio.buffers.obs_pool import AUTO, has_image, resolve_memory_saving
from cardio.buffers.rows import take_rows
from cardio.buffers.storage import StreamStorage
from cardio.errors import BufferError
from cardio.pytree import Tree, named_leaves, structure, tree_leaves, tree_map

__all__ = ["AUTO", "BufferError", "CircularBuffer", "has_image", "resolve_memory_saving"]

MAX_OUT_BLOCKS = 4  # pooled output blocks per batch shape; beyond that, batches still in use get fresh arrays


def _unreferenced(arrays: list[np.ndarray]) -> bool:
    # 3 = the list, the generator's loop variable and getrefcount's own argument: nobody else holds the array.
    return all(sys.getrefcount(a) <= 3 for a in arrays)


class CircularBuffer(StreamStorage):
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

    n_step: int  # n, rewards summed per sample
    gamma: float  # discount of the n-step sum
    reduce: bool  # sum the n-step window (True) or return it whole
    rng: np.random.Generator  # the sampling generator

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
        if int(n_step) != n_step or n_step < 1:
            raise BufferError(f"buffer n_step must be an integer >= 1, got n_step={n_step}")
        if not 0.0 <= gamma <= 1.0:
            raise BufferError(f"buffer gamma must lie in [0, 1], got gamma={gamma}")
        super().__init__(capacity, num_envs, memory_saving)
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
        self.rng = np.random.default_rng(seed)

    def _reset_layout(self) -> None:
        super()._reset_layout()
        self._blocks: dict[tuple[int, ...], list[list[np.ndarray]]] = {}  # pooled output blocks by batch shape

    def _required_fields(self) -> set[str]:
        need = super()._required_fields()
        return need | {"reward", "next_obs", "terminated", "truncated"} if self.n_step > 1 else need

    def _describe_options(self) -> str:
        return f"n_step={self.n_step}, {super()._describe_options()}"

    # ----------------------------------------------------------------------------------------------- editing
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
            self._obs_pool.end_streams(cols, flat)
        marked[cols] = True
        return marked

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
            take_rows(self._flat[i_term], boot, out[i_term].reshape(b))
            take_rows(self._flat[i_trunc], boot, out[i_trunc].reshape(b))
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
                    next_rows = self._obs_pool.where(boot, self.cursor, self.slots_per_env)
                obs_src = self._src[self._obs_leaves[next_of]]
                self._obs_pool.gather(next_of, next_rows, lambda index, d, src=obs_src: take_rows(src, index, d), dst)
            elif self.n_step > 1 and self._is_next_obs[i]:
                take_rows(src, boot, dst)
            else:
                take_rows(src, flat, dst)
        batch: dict[str, Any] = optree.tree_unflatten(self._spec, out)  # type: ignore[arg-type,assignment]
        batch.update(extras)
        return batch

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
            **self._obs_pool.state_dict(),
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
                self._obs_pool.load_state_dict(state)
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
        return files.save_state(self.state_dict(), path)

    def load(self, path: str | os.PathLike[str]) -> None:
        """Restore a buffer written by :meth:`save`.

        Raises:
            BufferError: no such file, a corrupt or foreign file, or a buffer of other settings; the buffer is
                left untouched.
        """
        self.load_state_dict(files.load_state(path))

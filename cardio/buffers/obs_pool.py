"""The memory-saving observation store: each observation kept once, final observations on the side.

Legend: N env streams, T rows per stream, flat slot ``i = t * N + e``; ``*s`` the shape of one observation leaf.

With ``memory_saving`` the buffer stores ``obs`` only, and the ``next_obs`` of the transition at row t of stream e
is recovered at sample time from one of three places:

* the next row's ``obs``, ``obs[t + 1, e]`` (mod T), whenever t did not end its episode: within an episode the
  next observation *is* the next step's observation (checked on every write: anything else would be lost);
* the stream's **tail** ``[N, *s]`` when t is the stream's newest transition (row ``cursor[e] - 1``), whose
  successor is not stored yet;
* the **final-observation pool** ``[P, *s]`` when t ended its episode, terminated *or truncated*: the true final
  observation (a truncated episode bootstraps from it, which is why SB3 refuses to combine its memory optimisation
  with timeout handling). ``final[i]`` is the pool entry of slot i (-1: none); an entry is returned to the free
  list when its slot is overwritten, and the pool doubles when it runs out, so it holds one entry per stored
  episode end.

So image observations cost half the memory, and every sampled ``next_obs`` equals what a plain buffer returns
(``tests/buffers/test_memory_saving.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from cardio.errors import BufferError

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


Where = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]
"""Where the next observation of each sampled slot lives: ``(next slot, rows from the tail, their streams, rows
from the pool, their pool entries)``."""


class FinalObsPool:
    """The tail and final-observation pool of a memory-saving buffer (module docstring).

    Args:
        num_envs: N, the buffer's streams.
    """

    tail: list[np.ndarray]  # per obs leaf [N, *s]: each stream's newest next_obs
    tail_done: np.ndarray  # [N] whether the stream's newest transition ended its episode
    pool: list[np.ndarray]  # per obs leaf [P, *s]: final observations
    final: np.ndarray  # [T*N] pool entry of a slot's final observation, -1 = none
    free: list[int]  # unused pool entries

    def __init__(self, num_envs: int) -> None:
        self.num_envs = num_envs
        self.tail, self.pool, self.free = [], [], []
        self.tail_done = np.zeros(num_envs, dtype=bool)
        self.final = np.full(0, -1, dtype=np.int64)

    def allocate(self, obs_storage: list[np.ndarray], capacity: int) -> None:
        """Shape the tail and an empty pool from the buffer's ``[T, N, *s]`` observation leaves."""
        self.tail = [np.zeros_like(leaf[0]) for leaf in obs_storage]
        self.pool = [np.zeros((0, *leaf.shape[2:]), leaf.dtype) for leaf in obs_storage]
        self.final = np.full(capacity, -1, dtype=np.int64)

    @property
    def arrays(self) -> list[np.ndarray]:
        return [*self.tail, *self.pool, self.final]

    def continues(self, obs: list[np.ndarray], cols: np.ndarray, stored: np.ndarray) -> bool:
        """Whether the rows about to be written to streams ``cols`` (``obs`` per obs leaf, indexed by ``cols``)
        continue their streams: each ``obs`` equals the stream's newest ``next_obs`` unless that ended its
        episode. Anything else would be lost, so the buffer refuses it."""
        cont = cols[(stored[cols] > 0) & ~self.tail_done[cols]]
        return not cont.size or all(np.array_equal(o[cont], tail[cont]) for o, tail in zip(obs, self.tail, strict=True))

    def record(self, next_obs: list[np.ndarray], done: np.ndarray, cols: np.ndarray, flat: np.ndarray) -> None:
        """Bookkeeping for the rows about to be written at ``flat`` (streams ``cols``).

        Args:
            next_obs: per obs leaf, the written rows' next observations ``[N, *s]``, indexed by ``cols``.
            done: ``[len(cols)]`` whether each written row ended its episode.
            cols: the streams written.
            flat: the slots written.
        """
        old = self.final[flat]  # overwritten slots give their final observation's entry back
        self.free.extend(old[old >= 0].tolist())
        self.final[flat] = -1
        for row_in_batch in np.flatnonzero(done):
            entry = self.take_entry()
            for pool, src in zip(self.pool, next_obs, strict=True):
                pool[entry] = src[cols[row_in_batch]]
            self.final[flat[row_in_batch]] = entry
        for tail, src in zip(self.tail, next_obs, strict=True):
            tail[cols] = src[cols]
        self.tail_done[cols] = done

    def take_entry(self) -> int:
        """A free pool entry, doubling the pool when none is left."""
        if not self.free:
            old = self.pool[0].shape[0]
            new = max(8, 2 * old)
            self.pool = [np.concatenate([p, np.zeros((new - old, *p.shape[1:]), p.dtype)]) for p in self.pool]
            self.free.extend(range(new - 1, old - 1, -1))
        return self.free.pop()

    def end_streams(self, cols: np.ndarray, slots: np.ndarray) -> None:
        """The newest transitions at ``slots`` (streams ``cols``) now end their episodes: their next observation
        moves from the tail to the pool (``CircularBuffer.truncate_streams``)."""
        for col, slot in zip(cols.tolist(), slots.tolist(), strict=True):
            entry = self.take_entry()
            for pool, tail in zip(self.pool, self.tail, strict=True):
                pool[entry] = tail[col]
            self.final[slot] = entry
        self.tail_done[cols] = True

    def clear(self) -> None:
        self.final[:] = -1
        self.free = list(range(len(self.pool[0]) - 1, -1, -1)) if self.pool else []
        self.tail_done[:] = False

    # ----------------------------------------------------------------------------------------------- reading
    def where(self, flat: np.ndarray, cursor: np.ndarray, slots_per_env: int) -> Where:
        """Where the next observation of each slot of ``flat`` lives (see :data:`Where`)."""
        rows, cols = np.divmod(flat, self.num_envs)
        following = ((rows + 1) % slots_per_env) * self.num_envs + cols
        latest = np.flatnonzero(rows == (cursor[cols] - 1) % slots_per_env)
        entry = self.final[flat]
        final = np.flatnonzero(entry >= 0)
        return following, latest, cols[latest], final, entry[final]

    def gather(self, leaf: int, where: Where, take: Any, dst: np.ndarray) -> None:
        """The next observations of obs leaf ``leaf`` into ``dst``: ``take(following, dst)`` reads the stored
        observations of the next slots, then the tail and pool rows replace theirs."""
        following, latest, latest_cols, final, entries = where
        take(following, dst)
        if latest.size:
            dst[latest] = self.tail[leaf][latest_cols]
        if final.size:
            dst[final] = self.pool[leaf][entries]

    # ----------------------------------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """The buffer state's ``tail``, ``tail_done``, ``pool``, ``final`` and ``free`` entries."""
        return {
            "tail": self.tail,
            "tail_done": self.tail_done.copy(),
            "pool": self.pool,
            "final": self.final.copy(),
            "free": list(self.free),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.tail = [np.array(t) for t in state["tail"]]
        self.tail_done = np.asarray(state["tail_done"], dtype=bool).copy()
        self.pool = [np.array(p) for p in state["pool"]]
        self.final = np.asarray(state["final"], dtype=np.int64).copy()
        self.free = [int(x) for x in state["free"]]

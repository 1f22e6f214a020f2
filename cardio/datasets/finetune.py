"""Offline-to-online: start an online run from an offline run's agent and its dataset buffer.

``python scripts/train.py agent=cql runner=off_policy init_from=<offline run dir>`` builds the online run as
usual, then :func:`warm_start` loads the offline checkpoint's agent weights (same agent class and spaces) and
copies every transition of its buffer into the online replay buffer, whole episodes per stream, before the first
env step. Counters, loggers and RNGs start fresh: this is a new run that begins with a trained agent and a full
buffer, not a resume (``resume=`` continues a run exactly).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cardio import checkpoint
from cardio.buffers.circular import CircularBuffer
from cardio.pytree import tree_map

if TYPE_CHECKING:
    from cardio.runner import Runner


def copy_transitions(source: CircularBuffer, target: CircularBuffer) -> int:
    """Append every transition stored in ``source`` to ``target``, keeping each source stream's rows together
    (oldest first) in one target stream; returns how many were copied.

    Source streams go to the target stream holding the fewest rows so far, so a one-env target gets them all
    back to back. When the target is smaller, its oldest rows are overwritten as in any circular buffer. A source
    stream whose last transition did not end its episode (a dataset's open-ended episode) ends there as
    ``truncated``: what follows it in the target stream (the next source stream, or the online run's first
    episode) is another episode, so no n-step window or sequence reads across.
    """
    if source.storage is None or len(source) == 0:
        return 0
    rows, n_src = source.slots_per_env, source.num_envs
    streams: list[list[np.ndarray]] = [[] for _ in range(target.num_envs)]  # flat source indices per target stream
    load = np.zeros(target.num_envs, dtype=np.int64)
    for s in range(n_src):
        size, cursor = int(source.size[s]), int(source.cursor[s])
        order = (np.arange(size) + (cursor if size == rows else 0)) % rows
        dst = int(np.argmin(load))
        streams[dst].append(order * n_src + s)
        load[dst] += size
    flat = [np.concatenate(idx) if idx else np.zeros(0, np.int64) for idx in streams]
    newest = ((source.cursor - 1) % rows) * n_src + np.arange(n_src)  # each source stream's last row, flat
    longest = int(load.max())
    if len(source) > target.capacity:
        warnings.warn(
            f"the offline buffer holds {len(source)} transitions, the online buffer.capacity={target.capacity}: "
            f"the oldest are overwritten",
            stacklevel=2,
        )
    for t in range(longest):
        mask = load > t
        index = np.array([f[t] if t < len(f) else 0 for f in flat])
        row = source.get(index)
        row = {k: row[k] for k in row if k not in ("discount", "mask")}  # n-step extras are not transitions
        if "truncated" in row:  # as CircularBuffer.truncate_streams marks a stream's newest row
            row["truncated"] = row["truncated"] | (np.isin(index, newest) & mask & ~row["terminated"])
        target.add(tree_map(np.asarray, row), mask)
    return int(load.sum())


def warm_start(runner: Runner, path: str | Path) -> int:
    """Load the agent and buffer of the offline checkpoint at ``path`` (a run dir or a ``.ckpt``) into ``runner``;
    returns the number of transitions copied.

    Raises:
        checkpoint.CheckpointError: no checkpoint there, or one of another agent class or other spaces.
    """
    path = checkpoint.resolve(path)
    state = checkpoint.load(path, kind="cardio.runner")
    saved, current = state.get("meta", {}), runner.meta()
    for key in ("agent", "observation_space", "action_space"):
        if saved.get(key) != current[key]:
            raise checkpoint.CheckpointError(
                f"init_from={path}: its {key} is {saved.get(key)!r}, this run's is {current[key]!r}"
            )
    runner.agent.load_state_dict(state["agent"])
    offline = CircularBuffer(saved["buffer_capacity"], num_envs=state["buffer"]["num_envs"])
    offline.load_state_dict({k: v for k, v in state["buffer"].items() if k != "kind"})
    return copy_transitions(offline, runner.buffer)

"""Minari datasets in and out of cardio's replay buffer (the ``offline`` extra: ``pip install 'cardio[offline]'``).

Legend: E episodes, L_e length of episode e, N streams (buffer columns), T rows per stream.

Reading (:func:`load_dataset`): a Minari episode of L steps holds ``L + 1`` observations (the last is the true
final observation, also after a truncation), L actions, rewards, ``terminations`` and ``truncations``, and
``infos`` whose leaves hold ``L + 1`` entries (the reset's, then one per step) or L. Transition t of the episode is

    obs = observations[t], action = actions[t], reward = rewards[t], next_obs = observations[t + 1],
    terminated = terminations[t], truncated = truncations[t], info/<key> = infos[key][t + 1] (or [t] for L entries)

so ``terminated`` and ``truncated`` are exactly as recorded and the final ``next_obs`` is the true final
observation. Episodes are packed into the :class:`~cardio.buffers.circular.CircularBuffer`'s streams: with
``pack=True`` (first-fit, longest first) a stream holds whole episodes back to back, T = the longest episode;
with ``pack=False`` each episode has its own stream. Either way no episode is split across streams, and an
episode that ends with neither flag (a recording stopped mid-episode) ends its stream, so n-step returns
(which stop at a flag or at a stream's end) never run from one episode into the next.

Writing (:func:`write_dataset`): episodes given as ``{"obs": [L+1, ...], "action": [L, ...], "reward": [L],
"terminated": [L], "truncated": [L], "infos": {key: [L+1, ...]}}`` (pytrees for Dict observations) become a
Minari dataset with the env's spec, readable by ``minari.load_dataset`` and by :func:`load_dataset`.

Every failure to read a dataset, or a dataset that does not match the env or agent it is meant for, raises one
:class:`DatasetError` naming the dataset and what is wrong.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from cardio.buffers.circular import CircularBuffer
from cardio.pytree import Tree, named_leaves, tree_leaves, tree_map


class DatasetError(ValueError):
    """A dataset that cannot be read or does not match the env/agent; the message names the dataset."""


def _minari() -> Any:
    try:
        import minari
    except ImportError as exc:  # the optional extra is missing
        raise DatasetError(
            "reading or writing Minari datasets needs the `offline` extra: pip install 'cardio[offline]'"
        ) from exc
    return minari


def datasets_path() -> Path:
    """Where Minari keeps local datasets: ``$MINARI_DATASETS_PATH`` or ``~/.minari/datasets``."""
    env = os.environ.get("MINARI_DATASETS_PATH")
    return Path(env) if env is not None else Path.home() / ".minari" / "datasets"


@dataclass
class OfflineData:
    """A dataset loaded into a buffer, with what a runner needs to check and evaluate against it."""

    dataset_id: str
    """The Minari dataset id, e.g. ``cardio/CartPole-v1/mixed-v0``."""
    buffer: CircularBuffer
    """Every transition, one stream per episode or packed segment (leaves ``[T, N, ...]``)."""
    observation_space: gym.Space
    """The dataset's observation space."""
    action_space: gym.Space
    """The dataset's action space."""
    env_id: str | None
    """Id of the env the data was recorded on (``None``: the dataset has no env spec)."""
    episode_returns: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """``[E]`` undiscounted return of each episode as recorded."""

    @property
    def mean_return(self) -> float:
        """The dataset's own average episode return (the bar an offline agent should clear)."""
        return float(np.mean(self.episode_returns))


# ------------------------------------------------------------------------------------------------------ reading
def _space_mismatch(role: str, dataset: gym.Space, env: gym.Space) -> str | None:
    """What differs between the dataset's space and the env's, in words (``None``: they match)."""
    if type(dataset) is not type(env):
        return f"{role} space is {dataset} in the dataset but {env} in the env"
    if isinstance(dataset, gym.spaces.Dict):
        assert isinstance(env, gym.spaces.Dict)
        if set(dataset.spaces) != set(env.spaces):
            return f"{role} keys are {sorted(dataset.spaces)} in the dataset but {sorted(env.spaces)} in the env"
        for key in dataset.spaces:
            diff = _space_mismatch(f"{role}/{key}", dataset[key], env[key])
            if diff is not None:
                return diff
        return None
    if getattr(dataset, "dtype", None) != getattr(env, "dtype", None):
        return f"{role} dtype is {dataset.dtype} in the dataset but {env.dtype} in the env"
    if dataset != env:
        return f"{role} space is {dataset} in the dataset but {env} in the env"
    return None


def check_spaces(
    dataset_id: str,
    dataset_obs: gym.Space,
    dataset_action: gym.Space,
    observation_space: gym.Space | None,
    action_space: gym.Space | None,
) -> None:
    """Raise :class:`DatasetError` unless the dataset's spaces equal the env's (classes, keys, dtypes, bounds).

    Args:
        dataset_id: named in the message.
        dataset_obs: the dataset's observation space.
        dataset_action: the dataset's action space.
        observation_space: the env's single-env observation space (``None``: not checked).
        action_space: the env's single-env action space (``None``: not checked).
    """
    for role, ours, theirs in (
        ("observation", dataset_obs, observation_space),
        ("action", dataset_action, action_space),
    ):
        if theirs is None:
            continue
        diff = _space_mismatch(role, ours, theirs)
        if diff is not None:
            raise DatasetError(
                f"dataset {dataset_id!r} does not fit this env: {diff}. "
                f"Record a dataset on this env (scripts/record.py) or pick the env the dataset was recorded on."
            )


def _episode_transitions(episode: Any, info_keys: Sequence[str], dataset_id: str) -> dict[str, Any]:
    """One Minari episode as a transition pytree with leaves ``[L, ...]`` (see the module docstring)."""
    length = len(episode.rewards)
    where = f"dataset {dataset_id!r}, episode {episode.id}"
    first_obs = tree_leaves(episode.observations)
    if not first_obs or any(len(x) != length + 1 for x in first_obs):
        have = [len(x) for x in first_obs]
        raise DatasetError(f"{where}: {length} steps need {length + 1} observations (the final one too), got {have}")
    transition: dict[str, Any] = {
        "obs": tree_map(lambda x: np.asarray(x[:-1]), episode.observations),
        "action": tree_map(np.asarray, episode.actions),
        "reward": np.asarray(episode.rewards, dtype=np.float32),
        "next_obs": tree_map(lambda x: np.asarray(x[1:]), episode.observations),
        "terminated": np.asarray(episode.terminations, dtype=bool),
        "truncated": np.asarray(episode.truncations, dtype=bool),
    }
    for name in ("action", "terminated", "truncated"):
        sizes = {len(x) for x in tree_leaves(transition[name])}
        if sizes != {length}:
            raise DatasetError(f"{where}: {length} rewards but {name} of length {sorted(sizes)}")
    if info_keys:
        infos = episode.infos or {}
        missing = [k for k in info_keys if k not in infos]
        if missing:
            raise DatasetError(f"{where}: infos lack {missing}; the episode's infos hold {sorted(infos)}")
        transition["info"] = {}
        for key in info_keys:
            value = np.asarray(infos[key])
            if len(value) == length + 1:  # the reset's info first: step t's info is entry t + 1
                value = value[1:]
            elif len(value) != length:
                raise DatasetError(f"{where}: info {key!r} has {len(value)} entries for {length} steps")
            transition["info"][key] = value
    return transition


def _pack(lengths: Sequence[int], open_ended: Sequence[bool], pack: bool) -> tuple[list[list[int]], int]:
    """Episode indices per stream and the rows per stream T (first-fit over episodes longest first)."""
    rows = max(lengths)
    if not pack:
        return [[e] for e in range(len(lengths))], rows
    streams: list[list[int]] = []
    free: list[int] = []  # rows left per stream; -1 once an open-ended episode closed it
    for e in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        slot = next((s for s, f in enumerate(free) if f >= lengths[e]), None)
        if slot is None:
            streams.append([])
            free.append(rows)
            slot = len(streams) - 1
        streams[slot].append(e)
        free[slot] = -1 if open_ended[e] else free[slot] - lengths[e]
    return streams, rows


def _read_episodes(dataset: Any, dataset_id: str) -> Iterator[Any]:
    try:
        yield from dataset.iterate_episodes()
    except DatasetError:
        raise
    except Exception as exc:  # h5py/arrow errors on a truncated or damaged file
        raise DatasetError(f"dataset {dataset_id!r} could not be read (corrupt file?): {exc}") from exc


def load_dataset(
    dataset_id: str,
    *,
    observation_space: gym.Space | None = None,
    action_space: gym.Space | None = None,
    info_keys: Sequence[str] = (),
    pack: bool = True,
    seed: int | None = None,
) -> OfflineData:
    """Read a local Minari dataset into a :class:`CircularBuffer` (nothing is downloaded).

    Args:
        dataset_id: Minari id, e.g. ``cardio/CartPole-v1/mixed-v0``; looked up under :func:`datasets_path`.
        observation_space: the env's single-env observation space; the dataset's must equal it.
        action_space: the env's single-env action space; the dataset's must equal it.
        info_keys: ``infos`` entries kept as ``info/<key>`` leaves of every transition.
        pack: pack whole episodes back to back into streams of the longest episode's length (False: one
            stream per episode; more padding, same transitions).
        seed: seed of the buffer's sampling generator.

    Raises:
        DatasetError: the dataset is missing, empty or corrupt, lacks a requested field, or its spaces or dtypes
            differ from the env's; the message names the dataset and the mismatch.
    """
    minari = _minari()
    where = datasets_path() / dataset_id
    try:
        dataset = minari.load_dataset(dataset_id)
    except FileNotFoundError as exc:
        raise DatasetError(
            f"dataset {dataset_id!r} not found at {where} (MINARI_DATASETS_PATH sets the folder; "
            f"`minari download {dataset_id}` fetches a remote one, docs/offline.md)"
        ) from exc
    except Exception as exc:  # metadata missing or unreadable
        raise DatasetError(f"dataset {dataset_id!r} at {where} could not be opened (corrupt?): {exc}") from exc
    check_spaces(dataset_id, dataset.observation_space, dataset.action_space, observation_space, action_space)
    if dataset.total_episodes == 0:
        raise DatasetError(f"dataset {dataset_id!r} at {where} holds no episodes")
    episodes = [_episode_transitions(ep, info_keys, dataset_id) for ep in _read_episodes(dataset, dataset_id)]
    lengths = [len(ep["reward"]) for ep in episodes]
    if min(lengths) == 0:
        raise DatasetError(f"dataset {dataset_id!r}: episode {lengths.index(0)} has no steps")
    for name, space in (("obs", dataset.observation_space), ("action", dataset.action_space)):
        _check_dtypes(dataset_id, name, episodes[0][name], space)
    open_ended = [not (ep["terminated"][-1] or ep["truncated"][-1]) for ep in episodes]
    streams, rows = _pack(lengths, open_ended, pack)
    buffer = CircularBuffer(rows * len(streams), num_envs=len(streams), seed=seed)
    # Columns [T, N, ...] filled in numpy, then written one row (all streams) at a time through add().
    columns = tree_map(lambda x: np.zeros((rows, len(streams), *x.shape[1:]), x.dtype), episodes[0])
    filled = np.zeros(len(streams), dtype=np.int64)
    for s, members in enumerate(streams):
        for e in members:
            n = lengths[e]
            for dst, src in zip(tree_leaves(columns), tree_leaves(episodes[e]), strict=True):
                dst[filled[s] : filled[s] + n, s] = src
            filled[s] += n
    for t in range(rows):
        buffer.add(tree_map(lambda x, t=t: x[t], columns), filled > t)
    env_spec = dataset.spec.env_spec
    return OfflineData(
        dataset_id=dataset_id,
        buffer=buffer,
        observation_space=dataset.observation_space,
        action_space=dataset.action_space,
        env_id=None if env_spec is None else env_spec.id,
        episode_returns=np.array([float(ep["reward"].sum()) for ep in episodes]),
    )


def _check_dtypes(dataset_id: str, name: str, data: Tree, space: gym.Space) -> None:
    """The stored arrays must have the dtypes the dataset's own space declares (a hand-written file may not)."""
    data_leaves = named_leaves({name: data})
    space_leaves = named_leaves({name: _space_dtypes(space)})
    for path, want in space_leaves.items():
        have = data_leaves.get(path)
        if have is None:
            raise DatasetError(f"dataset {dataset_id!r}: field {path!r} is missing (its space declares it)")
        if want is not None and np.dtype(have.dtype) != np.dtype(want):
            raise DatasetError(
                f"dataset {dataset_id!r}: field {path!r} is stored as {have.dtype}, its space says {want}"
            )


def _space_dtypes(space: gym.Space) -> Tree:
    if isinstance(space, gym.spaces.Dict):
        return {k: _space_dtypes(s) for k, s in space.spaces.items()}
    if isinstance(space, gym.spaces.Tuple):
        return tuple(_space_dtypes(s) for s in space.spaces)
    return np.dtype(space.dtype) if space.dtype is not None else None


# ------------------------------------------------------------------------------------------------------ writing
def write_dataset(
    dataset_id: str,
    episodes: Sequence[Mapping[str, Any]],
    *,
    env_spec: gym.envs.registration.EnvSpec | None,
    observation_space: gym.Space,
    action_space: gym.Space,
    algorithm_name: str | None = None,
    description: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write episodes (see the module docstring for their layout) as a local Minari dataset; returns its folder.

    Args:
        dataset_id: Minari id ``namespace/Env-vN/name-vK``.
        episodes: one mapping per episode: ``obs [L+1, ...]``, ``action [L, ...]``, ``reward``, ``terminated``,
            ``truncated`` ``[L]``, optional ``infos`` ``{key: [L+1, ...]}``.
        env_spec: the recording env's spec (kept in the dataset so Minari can rebuild the env).
        observation_space: the env's single-env observation space.
        action_space: the env's single-env action space.
        algorithm_name: stored in the metadata.
        description: stored in the metadata.
        overwrite: replace an existing dataset of that id (otherwise refuse).

    Raises:
        DatasetError: no episodes, or the id exists and ``overwrite`` is false.
    """
    import shutil
    import warnings

    minari = _minari()
    from minari.data_collector import EpisodeBuffer

    if not episodes:
        raise DatasetError(f"dataset {dataset_id!r}: no episodes to write")
    target = datasets_path() / dataset_id
    if target.exists():
        if not overwrite:
            raise DatasetError(f"dataset {dataset_id!r} already exists at {target}; pass overwrite=true or a new id")
        shutil.rmtree(target)
    buffers = [
        EpisodeBuffer(
            id=i,
            observations=ep["obs"],
            actions=ep["action"],
            rewards=np.asarray(ep["reward"], dtype=np.float64),
            terminations=np.asarray(ep["terminated"], dtype=bool),
            truncations=np.asarray(ep["truncated"], dtype=bool),
            infos=dict(ep.get("infos") or {}),
        )
        for i, ep in enumerate(episodes)
    ]
    with warnings.catch_warnings():  # Minari asks for author, e-mail, permalink: optional metadata
        warnings.simplefilter("ignore", UserWarning)
        minari.create_dataset_from_buffers(
            dataset_id,
            buffers,
            env=env_spec,
            observation_space=observation_space,
            action_space=action_space,
            algorithm_name=algorithm_name,
            description=description,
            data_format="hdf5",
        )
    return target

"""Minari datasets in and out: transitions exactly as recorded, packing, Dict observations, and one clear error
per kind of bad dataset. Every dataset is written here, under ``tmp_path``; nothing is downloaded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("minari")

from cardio.buffers import CircularBuffer
from cardio.datasets.minari import DatasetError, load_dataset, write_dataset
from cardio.datasets.record import buffer_episodes
from cardio.envs.counting import CountingEnv
from cardio.gatherer import Gatherer

OBS = gym.spaces.Box(0.0, np.inf, shape=(2,), dtype=np.float32)
ACT = gym.spaces.Discrete(2)


@pytest.fixture(autouse=True)
def local_datasets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    return root


def counting_episode(episode: int, length: int, end: str) -> dict[str, Any]:
    """Observations ``[episode, t]`` for t = 0..length (the last is the final one), reward ``10 * episode + t``."""
    t = np.arange(length + 1, dtype=np.float32)
    return {
        "obs": np.stack([np.full_like(t, episode), t], axis=1),
        "action": np.arange(length) % 2,
        "reward": 10.0 * episode + t[:-1],
        "terminated": np.arange(length) == length - 1 if end == "terminate" else np.zeros(length, bool),
        "truncated": np.arange(length) == length - 1 if end == "truncate" else np.zeros(length, bool),
        "infos": {"step": np.arange(length + 1)},  # the reset's entry, then one per step
    }


EPISODES = [
    counting_episode(0, 5, "terminate"),
    counting_episode(1, 3, "truncate"),
    counting_episode(2, 2, "terminate"),
]


def write(dataset_id: str, episodes: list[dict[str, Any]] = EPISODES, **kw: Any) -> Path:
    return write_dataset(dataset_id, episodes, env_spec=None, observation_space=OBS, action_space=ACT, **kw)


def stored(buffer: CircularBuffer) -> dict[str, Any]:
    """Every stored transition, keyed by its ``(episode, t)`` observation."""
    rows = buffer.get(np.flatnonzero(np.arange(buffer.slots_per_env)[:, None] < buffer.size[None, :]))
    keys = [tuple(int(x) for x in o) for o in rows["obs"]]
    return {
        k: {name: (leaf[i] if not isinstance(leaf, dict) else leaf["step"][i]) for name, leaf in rows.items()}
        for i, k in enumerate(keys)
    }


@pytest.mark.parametrize("pack", [True, False])
def test_transitions_flags_and_final_observations_are_as_recorded(pack: bool) -> None:
    write("test/Counting-v0/mixed-v0")
    data = load_dataset(
        "test/Counting-v0/mixed-v0", observation_space=OBS, action_space=ACT, info_keys=["step"], pack=pack
    )
    assert len(data.buffer) == 5 + 3 + 2
    assert data.buffer.num_envs == (2 if pack else 3)  # packed: [5] and [3, 2] in streams of 5 rows
    by_key = stored(data.buffer)
    for e, ep in enumerate(EPISODES):
        for t in range(len(ep["reward"])):
            row = by_key[(e, t)]
            np.testing.assert_array_equal(row["next_obs"], [e, t + 1])  # the last one: the true final obs
            assert row["reward"] == 10 * e + t and row["action"] == t % 2
            assert row["terminated"] == ep["terminated"][t] and row["truncated"] == ep["truncated"][t]
            assert row["info"] == t + 1  # the info the step returned, not the reset's
    assert by_key[(1, 2)]["truncated"] and not by_key[(1, 2)]["terminated"]
    assert data.mean_return == pytest.approx(np.mean([sum(ep["reward"]) for ep in EPISODES]))


def test_packed_streams_hold_whole_episodes_so_n_step_never_crosses_one() -> None:
    write("test/Counting-v0/mixed-v0")
    data = load_dataset("test/Counting-v0/mixed-v0")
    storage = data.buffer.storage
    assert storage is not None
    for s in range(data.buffer.num_envs):
        obs = storage["obs"][: data.buffer.size[s], s]
        nxt = storage["next_obs"][: data.buffer.size[s], s]
        done = storage["terminated"][: data.buffer.size[s], s] | storage["truncated"][: data.buffer.size[s], s]
        # inside a stream, a row follows its predecessor unless the predecessor ended an episode
        follows = np.all(obs[1:] == nxt[:-1], axis=1)
        assert np.all(follows | done[:-1])
        assert done[-1]


def test_an_open_ended_episode_closes_its_stream() -> None:
    open_ended = counting_episode(0, 2, "terminate")
    open_ended["terminated"][:] = False  # recording stopped mid-episode: neither flag at its end
    write(
        "test/Counting-v0/open-v0",
        [open_ended, counting_episode(1, 1, "terminate"), counting_episode(2, 3, "terminate")],
    )
    data = load_dataset("test/Counting-v0/open-v0")
    storage = data.buffer.storage
    assert storage is not None
    for s in range(data.buffer.num_envs):
        episodes = storage["obs"][: data.buffer.size[s], s, 0].tolist()
        if 0.0 in episodes:
            assert episodes[-1] == 0.0  # nothing packed after the open-ended episode


def test_dict_observations_round_trip() -> None:
    space = gym.spaces.Dict({"pos": gym.spaces.Box(-10, 10, (2,), np.float32), "flag": gym.spaces.Discrete(3)})
    episode = counting_episode(0, 4, "truncate")
    episode["obs"] = {"pos": episode["obs"], "flag": np.arange(5) % 3}
    write_dataset("test/Dict-v0/d-v0", [episode], env_spec=None, observation_space=space, action_space=ACT)
    data = load_dataset("test/Dict-v0/d-v0", observation_space=space, action_space=ACT)
    rows = data.buffer.get(np.arange(4))
    np.testing.assert_array_equal(rows["obs"]["pos"][:, 1], [0, 1, 2, 3])
    np.testing.assert_array_equal(rows["next_obs"]["flag"], [1, 2, 0, 1])
    np.testing.assert_array_equal(rows["next_obs"]["pos"][-1], [0, 4])
    assert rows["truncated"].tolist() == [False, False, False, True]


def test_a_replay_buffer_cuts_back_into_the_episodes_it_holds() -> None:
    env = gym.vector.SyncVectorEnv(
        [lambda: CountingEnv(3, "truncate"), lambda: CountingEnv(4, "terminate")],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )
    buffer = CircularBuffer(20, num_envs=2)
    gatherer = Gatherer(env, seed=0)
    for _ in range(10):  # 10 rows per stream: the oldest are overwritten, streams end mid-episode
        buffer.add(*gatherer.step(gatherer.random_policy))
    episodes = buffer_episodes(buffer)
    assert sum(len(ep["reward"]) for ep in episodes) == len(buffer) == 20
    for ep in episodes:
        obs = ep["obs"]
        assert np.all(obs[1:, 1] == obs[:-1, 1] + 1)  # one episode, its final obs included
        assert np.all(obs[:, 0] == obs[0, 0])
        assert not ep["terminated"][:-1].any() and not ep["truncated"][:-1].any()
    ended = [ep for ep in episodes if ep["terminated"][-1] or ep["truncated"][-1]]
    assert {int(ep["obs"][-1, 1]) for ep in ended} == {3, 4}  # ended at the env's length, by its own flag
    assert all(ep["truncated"][-1] for ep in ended if ep["obs"][-1, 1] == 3)


# ------------------------------------------------------------------------------------------------------ bad data
def test_a_missing_dataset_names_the_id_and_the_folder(local_datasets: Path) -> None:
    with pytest.raises(DatasetError, match=r"'test/None-v0/x-v0' not found at .*minari"):
        load_dataset("test/None-v0/x-v0")


@pytest.mark.parametrize(
    ("obs", "act", "match"),
    [
        (gym.spaces.Box(0.0, np.inf, shape=(3,), dtype=np.float32), ACT, "observation space is Box"),
        (
            gym.spaces.Box(0.0, np.inf, shape=(2,), dtype=np.float64),
            ACT,
            "observation dtype is float32 in the dataset but float64",
        ),
        (OBS, gym.spaces.Discrete(3), "action space is Discrete\\(2\\) in the dataset but Discrete\\(3\\)"),
        (OBS, gym.spaces.Box(-1, 1, (1,), np.float32), "action space is Discrete\\(2\\) in the dataset but Box"),
    ],
)
def test_spaces_or_dtypes_unlike_the_envs_are_refused(obs: gym.Space, act: gym.Space, match: str) -> None:
    write("test/Counting-v0/mixed-v0")
    with pytest.raises(DatasetError, match=f"dataset 'test/Counting-v0/mixed-v0' does not fit this env: {match}"):
        load_dataset("test/Counting-v0/mixed-v0", observation_space=obs, action_space=act)


def test_a_missing_info_field_is_named_with_those_present() -> None:
    write("test/Counting-v0/mixed-v0")
    with pytest.raises(DatasetError, match=r"'test/Counting-v0/mixed-v0', episode 0: infos lack \['cost'\]; .*'step'"):
        load_dataset("test/Counting-v0/mixed-v0", info_keys=["cost"])


def test_stored_arrays_unlike_the_datasets_own_space_are_refused() -> None:
    episode = counting_episode(0, 3, "terminate")
    episode["obs"] = episode["obs"].astype(np.float64)  # declared float32
    write("test/Counting-v0/f64-v0", [episode])
    with pytest.raises(
        DatasetError, match=r"'test/Counting-v0/f64-v0': field 'obs' is stored as float64, its space says float32"
    ):
        load_dataset("test/Counting-v0/f64-v0")


@pytest.mark.filterwarnings("ignore::UserWarning")  # Minari asks for optional metadata
def test_an_empty_dataset_is_refused() -> None:
    import minari

    minari.create_dataset_from_buffers("test/Counting-v0/empty-v0", [], observation_space=OBS, action_space=ACT)
    with pytest.raises(DatasetError, match=r"'test/Counting-v0/empty-v0' at .* holds no episodes"):
        load_dataset("test/Counting-v0/empty-v0")


def test_a_corrupt_file_is_refused(local_datasets: Path) -> None:
    path = write("test/Counting-v0/mixed-v0")
    (path / "data" / "main_data.hdf5").write_bytes(b"not an hdf5 file")
    with pytest.raises(DatasetError, match=r"'test/Counting-v0/mixed-v0' could not be read \(corrupt file\?\)"):
        load_dataset("test/Counting-v0/mixed-v0")
    (path / "data" / "metadata.json").write_text("{")
    with pytest.raises(DatasetError, match=r"'test/Counting-v0/mixed-v0' at .* could not be opened \(corrupt\?\)"):
        load_dataset("test/Counting-v0/mixed-v0")


def test_writing_refuses_to_overwrite_unless_asked() -> None:
    write("test/Counting-v0/mixed-v0")
    with pytest.raises(DatasetError, match=r"already exists .* overwrite=true"):
        write("test/Counting-v0/mixed-v0")
    write("test/Counting-v0/mixed-v0", EPISODES[:1], overwrite=True)
    assert len(load_dataset("test/Counting-v0/mixed-v0").buffer) == 5

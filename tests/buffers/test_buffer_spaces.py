"""Every gymnasium space round-trips through the buffer, as do agent extras; update() writes in place."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from cardio.buffers import CircularBuffer, SequenceBuffer
from cardio.pytree import named_leaves

SPACES = {
    "box_float32": gym.spaces.Box(-1, 1, (3,), np.float32),
    "box_float64": gym.spaces.Box(-1, 1, (2, 2), np.float64),
    "box_uint8": gym.spaces.Box(0, 255, (4, 4, 2), np.uint8),
    "box_int32": gym.spaces.Box(-5, 5, (2,), np.int32),
    "discrete": gym.spaces.Discrete(5),
    "multidiscrete": gym.spaces.MultiDiscrete([3, 4]),
    "multibinary": gym.spaces.MultiBinary(6),
    "dict": gym.spaces.Dict({"pixels": gym.spaces.Box(0, 255, (3, 3), np.uint8), "pos": gym.spaces.Discrete(4)}),
    "tuple": gym.spaces.Tuple(
        (gym.spaces.Discrete(3), gym.spaces.Dict({"a": gym.spaces.MultiBinary(2), "b": gym.spaces.Box(0, 1, (1,))}))
    ),
}


def batched(space: gym.Space, n: int, seed: int) -> object:
    """``n`` samples of ``space`` stacked into a ``[n, ...]`` pytree (what a vector env returns)."""
    vector_space = gym.vector.utils.batch_space(space, n)
    vector_space.seed(seed)
    return vector_space.sample()


def transition(obs_space: gym.Space, act_space: gym.Space, n: int, seed: int) -> dict:
    return {
        "obs": batched(obs_space, n, seed),
        "action": batched(act_space, n, seed + 1),
        "reward": np.arange(n, dtype=np.float32) + seed,
        "next_obs": batched(obs_space, n, seed + 2),
        "terminated": np.zeros(n, bool),
        "truncated": np.zeros(n, bool),
        "log_prob": np.full(n, -0.5 * seed, np.float32),  # agent extras are fields like any other
        "hidden": np.full((n, 2, 3), seed, np.float32),
    }


@pytest.mark.parametrize("num_envs", [1, 3])
@pytest.mark.parametrize("name", list(SPACES))
def test_space_roundtrip(name: str, num_envs: int) -> None:
    space = SPACES[name]
    buffer = CircularBuffer(8 * num_envs, num_envs)
    written = [transition(space, space, num_envs, seed) for seed in range(3)]
    for t in written:
        buffer.add(t)
    for step, t in enumerate(written):
        got = buffer.get(np.arange(num_envs) + step * num_envs)
        want = named_leaves(t)
        for leaf_name, leaf in named_leaves(got).items():
            expected = np.asarray(want[leaf_name])
            np.testing.assert_array_equal(leaf, expected.astype(leaf.dtype), err_msg=leaf_name)
            assert leaf.dtype == (np.float32 if expected.dtype == np.float64 else expected.dtype)


@pytest.mark.parametrize("name", ["dict", "tuple", "box_uint8"])
def test_nested_spaces_with_memory_saving_and_sequences(name: str) -> None:
    space = SPACES[name]
    buffer = SequenceBuffer(16, 2, seed=0, seq_len=2, memory_saving=True)
    obs = batched(space, 2, 0)
    for seed in range(4):
        nxt = batched(space, 2, seed + 10)
        t = transition(space, space, 2, seed) | {"obs": obs, "next_obs": nxt}
        buffer.add(t)
        obs = nxt
    batch, indices = buffer.sample(3)
    assert indices.shape == (3, 2) and batch["mask"].shape == (3, 2)
    plain = CircularBuffer(16, 2)
    obs = batched(space, 2, 0)
    for seed in range(4):
        nxt = batched(space, 2, seed + 10)
        plain.add(transition(space, space, 2, seed) | {"obs": obs, "next_obs": nxt})
        obs = nxt
    for leaf_name, leaf in named_leaves(plain.get(indices)).items():
        np.testing.assert_array_equal(named_leaves(batch)[leaf_name], leaf, err_msg=leaf_name)


def test_update_overwrites_in_place() -> None:
    space = SPACES["dict"]
    buffer = CircularBuffer(8, 2)
    for seed in range(3):
        buffer.add(transition(space, space, 2, seed))
    buffer.update(np.array([0, 3]), {"log_prob": np.array([7.0, 8.0]), "obs": {"pos": np.array([1, 2])}})
    got = buffer.get(np.array([0, 3, 1]))
    np.testing.assert_array_equal(got["log_prob"], [7.0, 8.0, -0.0])
    np.testing.assert_array_equal(got["obs"]["pos"][:2], [1, 2])

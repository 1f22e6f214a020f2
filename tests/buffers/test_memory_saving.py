"""memory_saving: observations stored once, yet every next_obs equals the plain buffer's, truncation included."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

from cardio.buffers import CircularBuffer
from cardio.envs import CountingEnv
from cardio.gatherer import Gatherer


def counting_vector_env(mode: AutoresetMode, end: str) -> gym.vector.VectorEnv:
    lengths = [2, 3, 5]  # episodes end at different steps in each env
    return gym.vector.SyncVectorEnv(
        [lambda n=n: CountingEnv(length=n, end=end) for n in lengths],  # type: ignore[misc]
        autoreset_mode=mode,
    )


@pytest.mark.parametrize("end", ["truncate", "terminate"])
@pytest.mark.parametrize("mode", [AutoresetMode.SAME_STEP, AutoresetMode.NEXT_STEP], ids=["same_step", "next_step"])
@pytest.mark.parametrize("steps", [6, 25], ids=["no_wrap", "wrap"])
def test_equals_plain_buffer(mode: AutoresetMode, end: str, steps: int) -> None:
    gatherer = Gatherer(counting_vector_env(mode, end), seed=0)
    plain, saving = CircularBuffer(30, 3), CircularBuffer(30, 3, memory_saving=True)
    for _ in range(steps):
        transition, valid = gatherer.step(gatherer.random_policy)
        plain.add(transition, valid)
        saving.add(transition, valid)
    np.testing.assert_array_equal(plain.size, saving.size)
    flat = np.array([t * 3 + e for e in range(3) for t in range(int(plain.size[e]))])
    want, got = plain.get(flat), saving.get(flat)
    for key in want:
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)
    ended = want["terminated"] | want["truncated"]
    assert ended.any()
    # the true final observation [episode, length] is kept, never the next episode's reset obs [episode + 1, 0]
    lengths = np.array([2, 3, 5])[flat[ended] % 3]
    np.testing.assert_array_equal(got["next_obs"][ended, 1], lengths)


def test_naive_next_slot_would_lose_final_obs() -> None:
    """Negative control: the obs in the slot after an episode end is the reset obs, not the final one."""
    gatherer = Gatherer(counting_vector_env(AutoresetMode.SAME_STEP, "truncate"), seed=0)
    saving = CircularBuffer(30, 3, memory_saving=True)
    for _ in range(6):
        saving.add(*gatherer.step(gatherer.random_policy))
    got = saving.get(np.array([3]))  # env 0, t=1: its episode (length 2) was truncated there
    following = saving.get(np.array([6]))  # env 0's next slot
    assert got["truncated"][0] and got["next_obs"][0, 1] == 2
    assert following["obs"][0, 1] == 0  # what a naive obs[t + 1] lookup would have bootstrapped from


def test_memory_of_atari_frames() -> None:
    """84x84x4 uint8 frames: memory_saving holds about half the plain buffer's bytes (episode ends add a few)."""
    frames = np.random.default_rng(0).integers(0, 256, (16, 84, 84, 4), dtype=np.uint8)
    plain, saving = CircularBuffer(800, 4), CircularBuffer(800, 4, memory_saving=True)
    for i in range(250):
        ends = (np.arange(4) + i) % 200 == 0
        batch = {
            "obs": frames[(np.arange(4) + i) % 16],
            "action": np.zeros(4, np.int64),
            "reward": np.zeros(4, np.float32),
            "next_obs": frames[(np.arange(4) + i + 1) % 16],
            "terminated": np.zeros(4, bool),
            "truncated": ends,
        }
        plain.add(batch)
        saving.add(batch)
    assert saving.nbytes / plain.nbytes < 0.52
    np.testing.assert_array_equal(saving.get(np.arange(40))["next_obs"], plain.get(np.arange(40))["next_obs"])

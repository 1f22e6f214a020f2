"""CircularBuffer basics: batched add, wrap-around, per-env cursors, checks and state."""

from __future__ import annotations

import numpy as np
import pytest

from cardio.buffers import BufferError, CircularBuffer


def transition(step: int, num_envs: int) -> dict[str, np.ndarray]:
    """Row e of step s has obs = 100*s + e, so every stored value names its step and env."""
    base = 100.0 * step + np.arange(num_envs, dtype=np.float32)
    return {
        "obs": np.stack([base, -base], axis=1).astype(np.float32),
        "action": np.arange(num_envs, dtype=np.int64),
        "reward": base.astype(np.float32),
        "next_obs": np.stack([base + 1, -base - 1], axis=1).astype(np.float32),
        "terminated": np.zeros(num_envs, dtype=bool),
        "truncated": np.zeros(num_envs, dtype=bool),
    }


@pytest.mark.parametrize("num_envs", [1, 4])
@pytest.mark.parametrize("steps", [3, 11])  # 11 steps into 5 rows wraps twice
def test_batched_add_keeps_the_newest_rows_per_env(num_envs: int, steps: int) -> None:
    buf = CircularBuffer(capacity=5 * num_envs, num_envs=num_envs, seed=0)
    for s in range(steps):
        buf.add(transition(s, num_envs))
    assert len(buf) == min(steps, 5) * num_envs
    stored = sorted(buf.storage["reward"][: min(steps, 5)].ravel().tolist())
    expected = sorted(100.0 * s + e for s in range(max(0, steps - 5), steps) for e in range(num_envs))
    assert stored == expected
    # each env's column only ever holds that env's rows
    for e in range(num_envs):
        assert np.all(buf.storage["reward"][: min(steps, 5), e] % 100 == e)


def test_sample_returns_stored_rows_and_their_indices() -> None:
    buf = CircularBuffer(capacity=40, num_envs=4, seed=0)
    for s in range(7):
        buf.add(transition(s, 4))
    batch, idx = buf.sample(16, num_batches=4)
    batch = {k: v.reshape(64, *v.shape[2:]) for k, v in batch.items()}
    idx = idx.ravel()
    assert batch["obs"].shape == (64, 2) and idx.shape == (64,)
    np.testing.assert_array_equal(batch["obs"][:, 0], batch["reward"])  # fields of one row stay together
    np.testing.assert_array_equal(batch["next_obs"][:, 0], batch["reward"] + 1)
    rows, envs = np.divmod(idx, 4)
    np.testing.assert_array_equal(batch["reward"], buf.storage["reward"][rows, envs])
    assert set((batch["reward"] % 100).astype(int)) == {0, 1, 2, 3}


def test_sample_num_batches_stacks_k_batches() -> None:
    buf = CircularBuffer(capacity=100, num_envs=2, seed=1)
    for s in range(20):
        buf.add(transition(s, 2))
    batches, idx = buf.sample(8, num_batches=3)
    assert batches["obs"].shape == (3, 8, 2) and batches["reward"].shape == (3, 8) and idx.shape == (3, 8)


def test_sampling_is_uniform_over_stored_transitions() -> None:
    buf = CircularBuffer(capacity=8, num_envs=2, seed=3)
    for s in range(3):  # 6 of 8 slots filled
        buf.add(transition(s, 2))
    _, idx = buf.sample(6, num_batches=10_000)
    counts = np.bincount(idx.ravel(), minlength=8)
    filled = counts[:6]
    assert counts[6:].sum() == 0  # never an empty slot
    assert np.all(np.abs(filled / 60_000 - 1 / 6) < 0.01)


def test_mask_skips_rows_and_keeps_streams_contiguous() -> None:
    buf = CircularBuffer(capacity=6, num_envs=2, seed=0)
    buf.add(transition(0, 2))
    buf.add(transition(1, 2), mask=np.array([True, False]))  # env 1's row is a reset step
    buf.add(transition(2, 2))
    assert buf.size.tolist() == [3, 2]
    np.testing.assert_array_equal(buf.storage["reward"][:3, 0], [0, 100, 200])
    np.testing.assert_array_equal(buf.storage["reward"][:2, 1], [1, 201])
    _, idx = buf.sample(5, num_batches=400)
    assert not np.any(idx == 2 * 2 + 1)  # row 2 of env 1 is empty and never sampled


def test_update_overwrites_fields_in_place() -> None:
    buf = CircularBuffer(capacity=10, num_envs=2, seed=0)
    for s in range(3):
        buf.add(transition(s, 2))
    buf.update(np.array([0, 3]), {"reward": np.array([-1.0, -2.0])})
    assert buf.storage["reward"][0, 0] == -1.0 and buf.storage["reward"][1, 1] == -2.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"capacity": 0}, "capacity must be positive"),
        ({"capacity": 3, "num_envs": 4}, "smaller than num_envs"),
    ],
)
def test_bad_construction_is_refused(kwargs: dict, match: str) -> None:
    with pytest.raises(BufferError, match=match):
        CircularBuffer(**kwargs)


def test_wrong_fields_shapes_and_dtypes_name_the_field() -> None:
    buf = CircularBuffer(capacity=10, num_envs=2)
    buf.add(transition(0, 2))
    missing = transition(1, 2)
    del missing["truncated"]
    with pytest.raises(BufferError, match=r"missing \['truncated'\]"):
        buf.add(missing)
    extra = {**transition(1, 2), "log_prob": np.zeros(2, np.float32)}
    with pytest.raises(BufferError, match=r"unexpected \['log_prob'\]"):
        buf.add(extra)
    wrong_shape = transition(1, 2)
    wrong_shape["obs"] = np.zeros((2, 3), np.float32)
    with pytest.raises(BufferError, match=r"'obs' has shape \(2, 3\), expected \(2, 2\)"):
        buf.add(wrong_shape)
    wrong_dtype = transition(1, 2)
    wrong_dtype["action"] = np.zeros(2, np.float32)
    with pytest.raises(BufferError, match="'action' has dtype float32"):
        buf.add(wrong_dtype)
    assert len(buf) == 2  # nothing of the refused adds was written


def test_sampling_more_than_stored_says_both_numbers() -> None:
    buf = CircularBuffer(capacity=100)
    for s in range(10):
        buf.add(transition(s, 1))
    with pytest.raises(BufferError, match=r"batch_size=64 from 10 stored.*learning_starts"):
        buf.sample(64)


def test_state_dict_round_trip_restores_sampling_too() -> None:
    buf = CircularBuffer(capacity=12, num_envs=2, seed=5)
    for s in range(9):
        buf.add(transition(s, 2))
    clone = CircularBuffer(capacity=12, num_envs=2, seed=99)
    clone.load_state_dict(buf.state_dict())
    a, ia = buf.sample(12)
    b, ib = clone.sample(12)
    np.testing.assert_array_equal(ia, ib)
    np.testing.assert_array_equal(a["obs"], b["obs"])
    with pytest.raises(BufferError, match="capacity=12"):
        CircularBuffer(capacity=10, num_envs=2).load_state_dict(buf.state_dict())


def test_float64_is_stored_as_float32_and_nested_trees_work() -> None:
    buf = CircularBuffer(capacity=4, num_envs=1)
    t = transition(0, 1)
    t["obs"] = {"pos": np.zeros((1, 3)), "img": np.zeros((1, 2, 2), np.uint8)}
    t["next_obs"] = {"pos": np.ones((1, 3)), "img": np.ones((1, 2, 2), np.uint8)}
    buf.add(t)
    assert buf.storage["obs"]["pos"].dtype == np.float32 and buf.storage["obs"]["img"].dtype == np.uint8
    buf.add(t)
    batch, _ = buf.sample(2)
    assert batch["next_obs"]["img"].shape == (2, 2, 2)

"""Every documented error, persistence (atomic save/load), and the lifetime of preallocated batches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cardio.buffers import BufferError, CircularBuffer, PrioritizedBuffer, SequenceBuffer
from tests.buffers.helpers import step_batch


def filled(buffer: CircularBuffer, steps: int = 5) -> CircularBuffer:
    for i in range(steps):
        buffer.add(step_batch(i, float(i), "trunc" if i % 3 == 2 else "", buffer.num_envs, 100.0))
    return buffer


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"capacity": 0}, "capacity must be positive"),
        ({"capacity": -3}, "capacity must be positive"),
        ({"capacity": 4, "num_envs": 0}, "num_envs must be positive"),
        ({"capacity": 2, "num_envs": 4}, "smaller than num_envs"),
        ({"capacity": 8, "n_step": 0}, "n_step must be an integer >= 1"),
        ({"capacity": 8, "num_envs": 4, "n_step": 3}, "exceeds the 2 slots per env stream"),
        ({"capacity": 8, "gamma": 1.5}, "gamma must lie in"),
        ({"capacity": 8, "reduce": False}, "needs n_step > 1"),  # not silently ignored
    ],
)
def test_constructor_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(BufferError, match=match):
        CircularBuffer(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"alpha": -1}, "alpha must be >= 0"), ({"beta": 2}, "beta must lie in"), ({"eps": 0}, "eps must be > 0")],
)
def test_prioritized_constructor_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(BufferError, match=match):
        PrioritizedBuffer(8, **kwargs)


def test_sequence_constructor_errors() -> None:
    with pytest.raises(BufferError, match="exceeds the 4 slots"):
        SequenceBuffer(8, 2, seq_len=4, burn_in=1)
    with pytest.raises(BufferError, match="seq_len >= 1"):
        SequenceBuffer(8, seq_len=0)
    with pytest.raises(TypeError):  # n-step sequences are not a thing: refused, not ignored
        SequenceBuffer(8, n_step=3)  # type: ignore[call-arg]


def test_sample_more_than_stored() -> None:
    buffer = filled(CircularBuffer(16), 3)
    with pytest.raises(BufferError, match=r"batch_size=4 from 3 stored.*learning_starts"):
        buffer.sample(4)
    with pytest.raises(BufferError, match="batch_size must be positive"):
        buffer.sample(0)


@pytest.mark.parametrize("fast", [True, False], ids=["fast_path", "general_path"])
def test_field_errors(fast: bool) -> None:
    buffer = filled(CircularBuffer(16, 2), 1)
    mask = None if fast else np.array([True, False])
    good = step_batch(1, 1.0, "", 2)
    missing = {k: v for k, v in good.items() if k != "reward"}
    with pytest.raises(BufferError, match=r"missing \['reward'\]"):
        buffer.add(missing, mask)
    with pytest.raises(BufferError, match=r"unexpected \['value'\]"):
        buffer.add(good | {"value": np.zeros(2, np.float32)}, mask)
    with pytest.raises(BufferError, match=r"'obs' has shape \(2, 3\), expected \(2, 2\)"):
        buffer.add(good | {"obs": np.zeros((2, 3), np.float32)}, mask)
    with pytest.raises(BufferError, match=r"'obs' has shape \(2,\)"):  # no silent broadcasting
        buffer.add(good | {"obs": np.zeros(2, np.float32)}, mask)
    with pytest.raises(BufferError, match="'action' has dtype float32, which cannot be stored as int64"):
        buffer.add(good | {"action": np.zeros(2, np.float32)}, mask)
    with pytest.raises(BufferError, match="mask must be bool"):
        buffer.add(good, np.array([1, 0]))
    assert len(buffer) == 2  # nothing was written by the refused adds
    buffer.add(good | {"obs": good["obs"].astype(np.float64)}, mask)  # same kind: cast, accepted


def test_option_needs_fields() -> None:
    with pytest.raises(BufferError, match=r"n_step=3.*needs fields"):
        CircularBuffer(16, n_step=3).add({"obs": np.zeros((1, 2))})
    with pytest.raises(BufferError, match="memory_saving=True needs fields"):
        CircularBuffer(16, memory_saving=True).add({"obs": np.zeros((1, 2)), "reward": np.zeros(1)})


def test_memory_saving_refuses_discontinuous_obs() -> None:
    buffer = CircularBuffer(16, memory_saving=True)
    buffer.add(step_batch(0, 0.0, ""))
    with pytest.raises(BufferError, match="memory_saving needs obs of each step to equal next_obs"):
        buffer.add(step_batch(5, 0.0, ""))  # obs [5, 0] but the previous next_obs was [1, 0]
    buffer.add(step_batch(1, 0.0, "trunc"))
    buffer.add(step_batch(9, 0.0, ""))  # after an episode end any obs is fine


def test_update_errors() -> None:
    with pytest.raises(BufferError, match="empty buffer"):
        CircularBuffer(8).update(np.array([0]), {"reward": np.zeros(1)})
    buffer = filled(CircularBuffer(8, memory_saving=True), 3)
    with pytest.raises(BufferError, match="'next_obs', not stored"):
        buffer.update(np.array([0]), {"next_obs": np.zeros((1, 2))})
    with pytest.raises(BufferError, match=r"shape \(2,\), expected \(1,\)"):
        buffer.update(np.array([0]), {"reward": np.zeros(2)})


def test_update_priorities_errors() -> None:
    buffer = filled(PrioritizedBuffer(8), 3)
    with pytest.raises(BufferError, match="NaN or infinite"):
        buffer.update_priorities(np.array([0]), np.array([np.nan]))
    with pytest.raises(BufferError, match="2 indices but 1 td_errors"):
        buffer.update_priorities(np.array([0, 1]), np.array([1.0]))


# ------------------------------------------------------------------------------------------- persistence
@pytest.mark.parametrize(
    "make",
    [
        lambda: CircularBuffer(12, 2, seed=1, n_step=2),
        lambda: CircularBuffer(12, 2, seed=1, memory_saving=True),
        lambda: PrioritizedBuffer(12, 2, seed=1, n_step=2),
        lambda: SequenceBuffer(12, 2, seed=1, seq_len=3),
    ],
    ids=["nstep", "memsave", "prioritized", "sequence"],
)
def test_save_load_roundtrip(make, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    buffer = filled(make(), 8)  # wraps: 6 rows per stream
    if isinstance(buffer, PrioritizedBuffer):
        buffer.update_priorities(np.array([0, 3]), np.array([5.0, 0.1]))
    path = buffer.save(tmp_path / "replay.npz")
    assert not list(tmp_path.glob(".*.tmp"))  # the temporary file was renamed away
    restored = make()
    restored.load(path)
    (a, ia), (b, ib) = buffer.sample(4), restored.sample(4)  # the generator state came back too
    np.testing.assert_array_equal(ia, ib)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    for i in (8, 9):  # and it keeps working where it left off
        restored.add(step_batch(i, float(i), "", 2, 100.0))
    assert len(restored) == 12


def test_load_refuses_mismatch_and_corruption(tmp_path: Path) -> None:
    source = filled(CircularBuffer(12, 2, seed=1), 4)
    path = source.save(tmp_path / "replay.npz")
    target = filled(CircularBuffer(12, 2, seed=1), 2)
    before = target.get(np.arange(4))
    with pytest.raises(BufferError, match="capacity=12, this buffer has capacity=16"):
        CircularBuffer(16, 2).load(path)
    with pytest.raises(BufferError, match="kind=CircularBuffer, this buffer has kind=PrioritizedBuffer"):
        PrioritizedBuffer(12, 2).load(path)
    with pytest.raises(BufferError, match="buffer state stores fields"):
        wider = CircularBuffer(12, 2)
        wider.add(step_batch(0, 0.0, "", 2) | {"value": np.zeros(2, np.float32)})
        wider.load(path)
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(path.read_bytes()[:200])
    with pytest.raises(BufferError, match="corrupt or not a cardio buffer"):
        target.load(corrupt)
    with pytest.raises(BufferError, match="no buffer file"):
        target.load(tmp_path / "missing.npz")
    other = tmp_path / "other.npz"
    np.savez(other, x=np.zeros(3))
    with pytest.raises(BufferError, match="corrupt or not a cardio buffer"):
        target.load(other)
    assert len(target) == 4
    for key, value in target.get(np.arange(4)).items():
        np.testing.assert_array_equal(value, before[key])


# ------------------------------------------------------------------------------------------- batch lifetime
def test_batch_in_use_is_never_overwritten() -> None:
    buffer = filled(CircularBuffer(64, 2, seed=0), 20)
    kept, _ = buffer.sample(8)
    copy = {k: v.copy() for k, v in kept.items()}
    view = kept["obs"][0]  # a view keeps its base alive, as a torch.from_numpy tensor would
    del kept
    for _ in range(10):
        buffer.sample(8)
    np.testing.assert_array_equal(view, copy["obs"][0])


def test_dropped_batches_reuse_their_arrays() -> None:
    """Negative control for the test above: a batch nobody holds is recycled (no allocation per call)."""
    buffer = filled(CircularBuffer(64, 2, seed=0), 20)
    ids = set()
    for _ in range(10):
        batch, _ = buffer.sample(8)
        ids.add(id(batch["obs"]))
        del batch
    assert len(ids) == 1


def test_k_batches_share_one_block() -> None:
    buffer = filled(CircularBuffer(64, 2, seed=0), 20)
    batches, indices = buffer.sample(8, num_batches=3)
    assert batches["obs"].shape == (3, 8, 2) and indices.shape == (3, 8)
    np.testing.assert_array_equal(batches["obs"][1], buffer.get(indices[1])["obs"])

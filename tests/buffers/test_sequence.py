"""Sequence sampling: [B, L] windows inside one env stream, masked after an episode end and past the cursor."""

from __future__ import annotations

import numpy as np
import pytest

from cardio.buffers import SequenceBuffer
from tests.buffers.helpers import step_batch
from tests.buffers.reference import ReferenceBuffer


def build(num_envs: int, steps: int, capacity: int, period: int = 5, **kwargs: int):  # type: ignore[no-untyped-def]
    buffer = SequenceBuffer(capacity, num_envs, seed=0, **kwargs)
    reference = ReferenceBuffer(capacity, num_envs)
    for i in range(steps):
        batch = step_batch(i, float(i), "term" if i % period == period - 1 else "", num_envs, 100.0)
        buffer.add(batch)
        reference.add(batch)
    return buffer, reference


@pytest.mark.parametrize("num_envs", [1, 3])
@pytest.mark.parametrize("steps", [12, 30], ids=["no_wrap", "wrap"])
def test_windows_match_reference(num_envs: int, steps: int) -> None:
    buffer, reference = build(num_envs, steps, capacity=16 * num_envs, seq_len=4, burn_in=2)
    batch, indices = buffer.sample(10)
    assert indices.shape == (10, 6) and batch["obs"].shape == (10, 6, 2) and batch["mask"].shape == (10, 6)
    for b in range(10):
        env, position = reference.locate(indices[b, 0])
        want_indices, want_mask = reference.sequence_at(env, position, 6)
        np.testing.assert_array_equal(indices[b], want_indices)
        np.testing.assert_array_equal(batch["mask"][b], want_mask)
        assert np.all(indices[b] % num_envs == env)  # one stream per window
        steps_seen = batch["obs"][b, :, 0] - 100.0 * env
        np.testing.assert_array_equal(np.diff(steps_seen), 1.0)  # consecutive steps: whole window stored
        assert position + 6 <= len(reference.streams[env])  # never past the cursor when a full window exists


def test_mask_turns_false_after_episode_end() -> None:
    buffer, _ = build(1, 10, capacity=16, period=3, seq_len=5)
    for _ in range(20):
        batch, _ = buffer.sample_sequences(1, seq_len=5)
        steps = batch["obs"][0, :, 0]
        ends = np.flatnonzero(steps % 3 == 2)  # steps 2, 5, 8 terminate
        first_end = ends[0] if ends.size else 5
        np.testing.assert_array_equal(batch["mask"][0], np.arange(5) <= first_end)


def test_padding_while_streams_are_short() -> None:
    """No stream holds a full window yet: windows are padded and masked past the cursor."""
    buffer, _ = build(2, 3, capacity=16, period=100, seq_len=6)
    batch, _ = buffer.sample(4)
    for b in range(4):
        start = batch["obs"][b, 0, 0] % 100
        np.testing.assert_array_equal(batch["mask"][b], np.arange(6) < 3 - start)


def test_sample_sequences_overrides_config() -> None:
    buffer, _ = build(1, 20, capacity=32, seq_len=4)
    _, indices = buffer.sample_sequences(3, seq_len=2, burn_in=3)
    assert indices.shape == (3, 5)


def test_k_batches_for_the_runner() -> None:
    """The runner's one-gather phase: ``sample(B, num_batches=k)``; batch j is an ordinary [B, L] batch."""
    buffer, reference = build(2, 20, capacity=32, seq_len=3, burn_in=1)
    batch, indices = buffer.sample(4, num_batches=5)
    assert indices.shape == (5, 4, 4) and batch["obs"].shape == (5, 4, 4, 2) and batch["mask"].shape == (5, 4, 4)
    for j in range(5):
        for b in range(4):
            env, position = reference.locate(indices[j, b, 0])
            want_indices, want_mask = reference.sequence_at(env, position, 4)
            np.testing.assert_array_equal(indices[j, b], want_indices)
            np.testing.assert_array_equal(batch["mask"][j, b], want_mask)

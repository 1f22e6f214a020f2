"""Prioritized replay: proportional sampling, importance weights by hand, max-priority inserts, annealing."""

from __future__ import annotations

import numpy as np
import pytest

from cardio.buffers import CircularBuffer, PrioritizedBuffer, SumTree
from tests.buffers.helpers import step_batch


def per_buffer(steps: int = 4, **kwargs: float) -> PrioritizedBuffer:
    buffer = PrioritizedBuffer(8, seed=0, **kwargs)
    for i in range(steps):
        buffer.add(step_batch(i, float(i), ""))
    return buffer


def test_sampled_in_proportion_to_priority() -> None:
    """alpha=1: slot i has priority |td_i| + eps with td = 1, 2, 3, 4 -> drawn with probability td_i / 10."""
    buffer = per_buffer(alpha=1.0)
    buffer.update_priorities(np.arange(4), np.array([1.0, 2.0, 3.0, 4.0]))
    _, indices = buffer.sample(4, num_batches=10_000)
    freq = np.bincount(indices.ravel(), minlength=4) / indices.size
    np.testing.assert_allclose(freq, [0.1, 0.2, 0.3, 0.4], atol=0.01)


def test_uniform_sampling_would_fail_the_proportion_check() -> None:
    """Negative control: the same counts from the uniform buffer are nowhere near 0.1 / 0.4."""
    buffer = CircularBuffer(8, seed=0)
    for i in range(4):
        buffer.add(step_batch(i, float(i), ""))
    _, indices = buffer.sample(4, num_batches=10_000)
    freq = np.bincount(indices.ravel(), minlength=4) / indices.size
    assert not np.allclose(freq, [0.1, 0.2, 0.3, 0.4], atol=0.01)


def test_alpha_zero_is_uniform() -> None:
    buffer = per_buffer(alpha=0.0)
    buffer.update_priorities(np.arange(4), np.array([1.0, 20.0, 300.0, 4000.0]))
    _, indices = buffer.sample(4, num_batches=10_000)
    np.testing.assert_allclose(np.bincount(indices.ravel()) / indices.size, 0.25, atol=0.01)


def test_importance_weights_by_hand() -> None:
    """alpha=0.5, td = 0, 3, 8, 15 (eps tiny) -> p = sqrt(td): 0, sqrt3, sqrt8, sqrt15 (+eps).

    w_i = (p_i / min_batch p)**-beta. A batch holding slots 1 and 3 with beta=0.5:
    w_1 = 1, w_3 = (sqrt15 / sqrt3) ** -0.5 = 5 ** -0.25.
    """
    buffer = per_buffer(alpha=0.5, beta=0.5, eps=1e-12)
    buffer.update_priorities(np.arange(4), np.array([0.0, 3.0, 8.0, 15.0]))
    for _ in range(50):
        batch, indices = buffer.sample(2)
        if sorted(indices.tolist()) == [1, 3]:
            break
    else:
        pytest.fail("never drew slots 1 and 3 together")
    weight = dict(zip(indices.tolist(), batch["weight"].tolist(), strict=True))
    assert weight[1] == pytest.approx(1.0)
    assert weight[3] == pytest.approx(5**-0.25, rel=1e-6)


def test_new_items_get_the_running_max_priority() -> None:
    buffer = per_buffer(alpha=1.0, eps=1e-9)
    assert buffer.tree.get(np.arange(4)).tolist() == [1.0] * 4  # before any update: 1
    buffer.update_priorities(np.array([0, 1]), np.array([7.0, 0.5]))
    buffer.add(step_batch(4, 4.0, ""))
    assert buffer.tree.get(np.array([4]))[0] == pytest.approx(7.0)
    assert buffer.tree.total == pytest.approx(7 + 0.5 + 1 + 1 + 7)


def test_beta_anneals_to_one() -> None:
    buffer = per_buffer(beta=0.4)
    buffer.on_progress(0, 1000)
    assert buffer.beta == pytest.approx(0.4)
    buffer.on_progress(500, 1000)
    assert buffer.beta == pytest.approx(0.7)
    buffer.on_progress(2000, 1000)
    assert buffer.beta == 1.0


def test_empty_slots_are_never_drawn() -> None:
    """Only 3 of 8 slots hold data; rounding must not land on an empty (zero-priority) slot."""
    buffer = per_buffer(steps=3)
    _, indices = buffer.sample(3, num_batches=2000)
    assert set(indices.ravel().tolist()) <= {0, 1, 2}


def test_sum_tree_against_cumsum() -> None:
    rng = np.random.default_rng(0)
    tree = SumTree(37)
    priorities = rng.random(37) * (rng.random(37) < 0.7)  # some zeros
    tree.set(np.arange(37), priorities)
    assert tree.total == pytest.approx(priorities.sum())
    mass = rng.random(1000) * priorities.sum()
    want = np.searchsorted(np.cumsum(priorities), mass, side="right")
    np.testing.assert_array_equal(tree.find(mass), want)
    assert np.all(priorities[tree.find(mass)] > 0)


def test_sum_tree_never_lands_on_an_empty_leaf() -> None:
    """A mass at (or rounding past) the total walks right into the empty tail: redone exactly, never returned."""
    tree = SumTree(8)
    tree.set(np.arange(8), np.array([1.0, 2.0, 0, 0, 0, 0, 0, 0]))
    np.testing.assert_array_equal(tree.find(np.array([0.0, 0.999, 1.0, 2.999, 3.0])), [0, 0, 1, 1, 1])


def test_clear_forgets_priorities() -> None:
    buffer = per_buffer()
    buffer.update_priorities(np.array([0]), np.array([50.0]))
    buffer.clear()
    assert buffer.tree.total == 0 and buffer.max_priority == 1.0

"""Offline-to-online (cardio/datasets/finetune.py): copying an offline buffer's streams into the online replay."""

from __future__ import annotations

import numpy as np
import pytest

from cardio.buffers import CircularBuffer
from cardio.datasets.finetune import copy_transitions
from tests.buffers.helpers import step_batch


def test_streams_packed_back_to_back_end_where_their_source_streams_end() -> None:
    """Two source streams whose last episodes are open-ended (obs 0,1,2 and 10,11) land back to back in a one-env
    n-step target: each block's last row is truncated there (not terminated), so the window from obs 1 sums
    rows 1-2 and bootstraps from obs 2's true next obs, never reading obs 10's reward. Negative control: the
    rows copied by hand without the cut do read across."""
    source = CircularBuffer(8, num_envs=2)
    for i in range(3):
        batch = step_batch(i, 1.0, "", num_envs=2, env_offset=10.0)
        batch["reward"][1] = 100.0  # stream 1's rewards: far from stream 0's
        source.add(batch, mask=np.array([True, i < 2]))
    gamma = 0.5
    target = CircularBuffer(16, n_step=3, gamma=gamma)
    assert copy_transitions(source, target) == 5
    stored = target.storage
    assert stored["obs"][:5, 0, 0].tolist() == [0, 1, 2, 10, 11]
    assert stored["truncated"][:5, 0].tolist() == [False, False, True, False, True]
    assert not stored["terminated"][:5, 0].any()
    got = target.get(np.array([1]))
    assert got["reward"][0] == pytest.approx(1 + gamma)
    assert got["next_obs"][0, 0] == 3 and got["discount"][0] == pytest.approx(gamma**2)

    naive = CircularBuffer(16, n_step=3, gamma=gamma)
    for flat in (0, 2, 4, 1, 3):  # source rows in stream order, as copied, without the cut
        row = source.get(np.array([flat]))
        naive.add({k: np.asarray(v) for k, v in row.items()})
    assert naive.get(np.array([1]))["reward"][0] == pytest.approx(1 + gamma + gamma**2 * 100.0)

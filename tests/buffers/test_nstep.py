"""n-step returns: the named cases of tests/cases/nstep.py, against the buffer and the reference model."""

from __future__ import annotations

import numpy as np
import pytest

from cardio.buffers import CircularBuffer, PrioritizedBuffer
from tests.buffers.helpers import flat_of_step, step_batch, write_case
from tests.buffers.reference import ReferenceBuffer
from tests.cases.nstep import CASES, NStepCase


@pytest.mark.parametrize("memory_saving", [False, True], ids=["plain", "memsave"])
@pytest.mark.parametrize("num_envs", [1, 4])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_nstep_case(case: NStepCase, num_envs: int, memory_saving: bool) -> None:
    capacity = case.capacity * num_envs
    buffer = CircularBuffer(capacity, num_envs, n_step=case.n, gamma=case.gamma, memory_saving=memory_saving)
    reference = ReferenceBuffer(capacity, num_envs, n_step=case.n, gamma=case.gamma)
    write_case(buffer, case, num_envs, reference)
    for step, (ret, k, terminated) in case.expected.items():
        for env in range(num_envs):
            flat = flat_of_step(step, env, num_envs, capacity)
            got = buffer.get(np.array([flat]))
            want_next = [step + k + 100.0 * env, 1.0 if case.ends[step + k - 1] else 0.0]
            assert got["reward"][0] == pytest.approx(ret, rel=1e-6), case.note
            np.testing.assert_array_equal(got["next_obs"][0], want_next)
            assert bool(got["terminated"][0]) == terminated
            assert got["obs"][0, 0] == step + 100.0 * env
            if case.n > 1:
                assert got["discount"][0] == pytest.approx(case.gamma**k)
                ref = reference.sample_at(flat)
                assert ref["reward"] == pytest.approx(ret) and ref["discount"] == pytest.approx(case.gamma**k)


def test_truncation_as_termination_would_miss() -> None:
    """Negative control: write TruncatedAtOffset1 with its truncation recorded as a termination (the classic
    bug) and the case's expectation (bootstrap, terminated=False) fails; recorded right, it holds."""
    case = next(c for c in CASES if c.name == "TruncatedAtOffset1")
    _, _, terminated = case.expected[0]
    buggy_case = NStepCase(case.name, case.rewards, ["term" if e == "trunc" else e for e in case.ends], case.n, {})
    right, buggy = CircularBuffer(16, n_step=3, gamma=case.gamma), CircularBuffer(16, n_step=3, gamma=case.gamma)
    write_case(right, case)
    write_case(buggy, buggy_case)
    assert bool(right.get(np.array([0]))["terminated"][0]) == terminated
    assert bool(buggy.get(np.array([0]))["terminated"][0]) != terminated


@pytest.mark.parametrize("num_envs", [1, 4])
@pytest.mark.parametrize("wrap", [False, True])
def test_n1_equals_plain(num_envs: int, wrap: bool) -> None:
    """n_step=1 batches are the plain buffer's, bit for bit (same seed, same draws), and carry no discount."""
    capacity = 8 * num_envs
    plain, one = CircularBuffer(capacity, num_envs, seed=3), CircularBuffer(capacity, num_envs, seed=3, n_step=1)
    for i in range(12 if wrap else 6):
        batch = step_batch(i, float(i), "trunc" if i % 4 == 3 else "", num_envs, 100.0)
        plain.add(batch)
        one.add(batch)
    (a, ia), (b, ib) = plain.sample(5, num_batches=2), one.sample(5, num_batches=2)
    np.testing.assert_array_equal(ia, ib)
    assert a.keys() == b.keys() and "discount" not in b
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


def test_reduce_false_returns_window_and_mask() -> None:
    case = next(c for c in CASES if c.name == "TerminatedAtOffset1")
    buffer = CircularBuffer(16, n_step=3, gamma=case.gamma, reduce=False)
    write_case(buffer, case)
    got = buffer.get(np.array([0, 2]))
    np.testing.assert_array_equal(got["reward"], [[1.0, 2.0, 0.0], [3.0, 4.0, 0.0]])
    np.testing.assert_array_equal(got["mask"], [[True, True, False], [True, True, False]])
    np.testing.assert_allclose(got["discount"], [case.gamma**2, case.gamma**2], rtol=1e-6)


def test_streams_never_mix() -> None:
    """Env 1 terminates at every step; env 0 never does: env 0's 3-step return sums only env 0's rewards."""
    buffer = CircularBuffer(32, num_envs=2, n_step=3, gamma=0.5)
    for i in range(6):
        batch = step_batch(i, 1.0, "", 2, 100.0)
        batch["reward"] = np.array([1.0, 10.0], np.float32)
        batch["terminated"] = np.array([False, True])
        buffer.add(batch)
    got = buffer.get(np.array([0, 1]))  # row 0 of env 0 and env 1
    np.testing.assert_allclose(got["reward"], [1 + 0.5 + 0.25, 10.0])
    np.testing.assert_allclose(got["discount"], [0.125, 0.5])


def test_prioritized_nstep_vector() -> None:
    """PER draws the slot; the n-step rule is the same as the uniform buffer's for that slot."""
    case = next(c for c in CASES if c.name == "ThreeStepVaryingReward")
    per = PrioritizedBuffer(32, num_envs=2, seed=0, n_step=3, gamma=case.gamma)
    plain = CircularBuffer(32, num_envs=2, n_step=3, gamma=case.gamma)
    write_case(per, case, 2)
    write_case(plain, case, 2)
    batch, idx = per.sample(6)
    want = plain.get(idx)
    for key in want:
        np.testing.assert_array_equal(batch[key], want[key])
    assert batch["weight"].shape == (6,)


@pytest.mark.parametrize("memory_saving", [False, True], ids=["plain", "memsave"])
def test_a_stream_cut_by_an_env_reset_ends_its_episode_there(memory_saving: bool) -> None:
    """A resume that resets the envs (their state could not be saved) cuts every stream's unfinished episode:
    ``truncate_streams`` marks the newest row truncated, so a 4-step window from row 0 stops at row 2 and
    bootstraps from row 2's true next_obs, never reading the next episode's reward; under memory_saving the new
    episode's first obs is accepted (no continuity error) and row 2's next_obs is still the true one. Negative
    control: without the cut the same window sums the next episode's reward."""
    gamma = 0.5

    def fill(cut: bool) -> CircularBuffer:
        buffer = CircularBuffer(16, 2, n_step=4, gamma=gamma, memory_saving=memory_saving and cut)
        assert not buffer.truncate_streams().any()  # nothing stored yet: nothing to cut
        for i in range(3):
            buffer.add(step_batch(i, 1.0, "", 2, 100.0))
        if cut:
            assert buffer.truncate_streams().tolist() == [True, True]
            assert not buffer.truncate_streams().any()  # already ended: left alone
        for i in range(50, 53):  # the next episode: its obs does not continue row 2's next_obs
            buffer.add(step_batch(i, 10.0, "", 2, 100.0))
        return buffer

    for env in range(2):
        got = fill(cut=True).get(np.array([0 * 2 + env, 2 * 2 + env]))
        assert got["reward"].tolist() == pytest.approx([1 + gamma + gamma**2, 1.0])
        assert got["discount"].tolist() == pytest.approx([gamma**3, gamma])
        np.testing.assert_array_equal(got["next_obs"][:, 0], [3 + 100 * env] * 2)  # the true next obs of row 2
        assert not got["terminated"].any()  # truncated: the target still bootstraps
        assert got["truncated"].tolist() == [True, True]
        uncut = fill(cut=False).get(np.array([env]))
        assert uncut["reward"][0] == pytest.approx(1 + gamma + gamma**2 + gamma**3 * 10.0)

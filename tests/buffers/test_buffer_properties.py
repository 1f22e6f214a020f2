"""Property tests: random add / sample / update sequences against the pure-Python reference model.

Covers wrap-around, vector envs with masked rows, n-step (both ends), memory_saving, sequences and PER.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from cardio.buffers import CircularBuffer, PrioritizedBuffer, SequenceBuffer
from tests.buffers.reference import ReferenceBuffer

END = st.sampled_from(["", "", "", "term", "trunc"])


@st.composite
def scenarios(draw: st.DrawFn) -> dict:
    num_envs = draw(st.integers(1, 3))
    rows = draw(st.integers(3, 7))
    ops = draw(
        st.lists(
            st.one_of(
                st.tuples(
                    st.just("add"),
                    st.lists(st.booleans(), min_size=num_envs, max_size=num_envs),  # mask
                    st.lists(END, min_size=num_envs, max_size=num_envs),
                    st.lists(st.integers(-3, 3), min_size=num_envs, max_size=num_envs),  # rewards
                ),
                st.tuples(st.just("sample"), st.integers(1, 5)),
                st.tuples(st.just("update"), st.integers(0, 10_000), st.integers(-50, 50)),
            ),
            min_size=1,
            max_size=40,
        )
    )
    return {
        "num_envs": num_envs,
        "capacity": rows * num_envs,
        "n_step": draw(st.integers(1, 3)),
        "memory_saving": draw(st.booleans()),
        "kind": draw(st.sampled_from(["uniform", "prioritized", "sequence"])),
        "ops": ops,
    }


class Streams:
    """Per-env counters producing continuous observations (what memory_saving relies on)."""

    def __init__(self, num_envs: int) -> None:
        self.t = np.zeros(num_envs, np.float32)

    def batch(self, ends: list[str], rewards: list[int], mask: np.ndarray) -> dict[str, np.ndarray]:
        n = len(ends)
        env = np.arange(n, dtype=np.float32) * 1000
        done = np.array([e != "" for e in ends])
        batch = {
            "obs": np.stack([env + self.t, np.zeros(n, np.float32)], axis=1),
            "action": np.arange(n, dtype=np.int64),
            "reward": np.array(rewards, np.float32),
            "next_obs": np.stack([env + self.t + 1, done.astype(np.float32)], axis=1),
            "terminated": np.array([e == "term" for e in ends]),
            "truncated": np.array([e == "trunc" for e in ends]),
            "value": np.zeros(n, np.float32),  # an agent extra, rewritten by update()
        }
        self.t += mask
        return batch


def make(s: dict) -> CircularBuffer:
    common = {"memory_saving": s["memory_saving"]}
    if s["kind"] == "sequence":
        return SequenceBuffer(s["capacity"], s["num_envs"], seed=0, seq_len=2, burn_in=1, **common)
    options = {"n_step": s["n_step"], "gamma": 0.5, **common}
    if s["kind"] == "prioritized":
        return PrioritizedBuffer(s["capacity"], s["num_envs"], seed=0, **options)
    return CircularBuffer(s["capacity"], s["num_envs"], seed=0, **options)


def assert_matches(buffer: CircularBuffer, reference: ReferenceBuffer, flat: np.ndarray, batch: dict) -> None:
    for b, i in enumerate(flat.tolist()):
        want = reference.sample_at(i)
        for key, value in want.items():
            np.testing.assert_allclose(np.asarray(batch[key])[b], value, rtol=1e-5, err_msg=f"{key} at {i}")


@settings(max_examples=80, deadline=None)
@given(scenarios())
def test_random_operations_match_reference(s: dict) -> None:
    buffer = make(s)
    n_step = 1 if s["kind"] == "sequence" else s["n_step"]
    reference = ReferenceBuffer(s["capacity"], s["num_envs"], n_step=n_step, gamma=0.5)
    streams = Streams(s["num_envs"])
    rng = np.random.default_rng(0)
    for op in s["ops"]:
        if op[0] == "add":
            mask = np.array(op[1])
            batch = streams.batch(op[2], op[3], mask)
            buffer.add(batch, mask)
            reference.add(batch, mask)
        elif op[0] == "update" and len(reference):
            stored = reference.all_flat()
            i = stored[op[1] % len(stored)]
            buffer.update(np.array([i]), {"value": np.array([op[2]], np.float32)})
            env, position = reference.locate(i)
            reference.streams[env][position]["value"] = np.float32(op[2])
        elif op[0] == "sample" and len(reference) >= op[1]:
            batch, indices = buffer.sample(op[1])
            if s["kind"] == "sequence":
                for b in range(op[1]):
                    env, position = reference.locate(indices[b, 0])
                    want_idx, want_mask = reference.sequence_at(env, position, 3)
                    np.testing.assert_array_equal(indices[b], want_idx)
                    np.testing.assert_array_equal(batch["mask"][b], want_mask)
                continue
            assert set(indices.tolist()) <= set(reference.all_flat())  # only stored slots are drawn
            assert_matches(buffer, reference, indices, batch)
            if isinstance(buffer, PrioritizedBuffer):
                p = buffer.tree.get(indices)
                np.testing.assert_allclose(batch["weight"], (p / p.min()) ** -buffer.beta, rtol=1e-5)
                buffer.update_priorities(indices, rng.random(indices.size))
        assert len(buffer) == len(reference)
    if len(reference):  # finally, every stored slot
        flat = np.array(reference.all_flat())
        assert_matches(buffer, reference, flat, buffer.get(flat))

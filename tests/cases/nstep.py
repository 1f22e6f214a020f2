"""Named n-step cases, run against the buffer and the pure-Python reference model (tests/buffers/test_nstep.py).

Each case writes one env stream of steps ``i = 0, 1, ...``: ``obs = [i, 0]``, reward ``rewards[i]``, and
``ends[i]`` one of ``""`` (episode goes on), ``"term"`` or ``"trunc"``. ``next_obs = [i + 1, 0]``, or
``[i + 1, 1]`` when step i ended its episode (the true final observation, distinct from the next reset obs).
``expected`` maps a written step i to ``(return, k, terminated)``: the return is written as the sum that
produces it, k is the number of rewards summed and the bootstrap observation is next_obs of step ``i + k - 1``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

G = 0.9  # gamma of every case


@dataclass(frozen=True)
class NStepCase:
    name: str
    rewards: list[float]
    ends: list[str]
    n: int
    expected: dict[int, tuple[float, int, bool]]
    capacity: int = 16
    gamma: float = G
    note: str = field(default="", compare=False)


CASES = [
    NStepCase(
        "ThreeStepVaryingReward",
        rewards=[1.0, 2.0, 3.0, 4.0, 5.0],
        ends=["", "", "", "", ""],
        n=3,
        expected={0: (1 + G * 2 + G**2 * 3, 3, False), 1: (2 + G * 3 + G**2 * 4, 3, False)},
    ),
    NStepCase(
        "EpisodeShorterThanN",
        rewards=[1.0, 2.0, 7.0, 7.0],
        ends=["", "term", "", ""],
        n=3,
        expected={0: (1 + G * 2, 2, True), 1: (2.0, 1, True), 2: (7 + G * 7, 2, False)},
        note="the second episode is cut by the cursor, not by an end",
    ),
    NStepCase(
        "TerminatedAtOffset0",
        rewards=[1.0, 2.0, 3.0, 4.0],
        ends=["term", "", "", ""],
        n=3,
        expected={0: (1.0, 1, True), 1: (2 + G * 3 + G**2 * 4, 3, False)},
    ),
    NStepCase(
        "TerminatedAtOffset1",
        rewards=[1.0, 2.0, 3.0, 4.0],
        ends=["", "term", "", ""],
        n=3,
        expected={0: (1 + G * 2, 2, True)},
    ),
    NStepCase(
        "TerminatedAtOffset2",
        rewards=[1.0, 2.0, 3.0, 4.0],
        ends=["", "", "term", ""],
        n=3,
        expected={0: (1 + G * 2 + G**2 * 3, 3, True), 1: (2 + G * 3, 2, True)},
    ),
    NStepCase(
        "TruncatedAtOffset0",
        rewards=[1.0, 2.0, 3.0, 4.0],
        ends=["trunc", "", "", ""],
        n=3,
        expected={0: (1.0, 1, False)},
        note="truncation stops the sum but bootstraps (terminated stays False) from the true final obs",
    ),
    NStepCase(
        "TruncatedAtOffset1",
        rewards=[1.0, 2.0, 3.0, 4.0],
        ends=["", "trunc", "", ""],
        n=3,
        expected={0: (1 + G * 2, 2, False)},
    ),
    NStepCase(
        "TruncatedAtOffset2",
        rewards=[1.0, 2.0, 3.0, 4.0],
        ends=["", "", "trunc", ""],
        n=3,
        expected={0: (1 + G * 2 + G**2 * 3, 3, False), 2: (3.0, 1, False)},
    ),
    NStepCase(
        "CursorCut",
        rewards=[1.0, 2.0, 3.0],
        ends=["", "", ""],
        n=3,
        expected={1: (2 + G * 3, 2, False), 2: (3.0, 1, False)},
        note="the newest transitions are shorter windows: never read past the write cursor",
    ),
    NStepCase(
        "CursorWrap",
        rewards=[1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        ends=["", "", "", "", "", ""],
        n=3,
        capacity=4,
        expected={2: (3 + G * 4 + G**2 * 5, 3, False), 3: (4 + G * 5 + G**2 * 6, 3, False), 5: (6.0, 1, False)},
        note="steps 2-5 are stored in rows 2, 3, 0, 1: windows run over the array's end, not over the cursor",
    ),
    NStepCase(
        "NEqualsOne",
        rewards=[1.0, 2.0, 3.0],
        ends=["", "trunc", ""],
        n=1,
        expected={0: (1.0, 1, False), 1: (2.0, 1, False), 2: (3.0, 1, False)},
    ),
]

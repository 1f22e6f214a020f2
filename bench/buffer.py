"""Replay-buffer benchmark: cardio's buffers against SB3's ReplayBuffer and cpprb, side by side.

Every case builds the contenders in the same process, then times them interleaved (A, B, A, B, ...) for
``--repeats`` rounds and prints the median rate of each and the ratio cardio / other; the targets are
issue 4's acceptance criteria. Data are pre-generated, so RNG cost is not timed. SB3 and cpprb are optional
(``pip install cardio[bench]``).

Cases
  add        CartPole shapes, capacity 100k: cardio ``add`` of 8-env batches (the runner's call, with its valid
             mask) vs SB3's one-transition ``add``; transitions/s.                  target >= 10x
  sample     CartPole shapes, full 100k: ``sample(256)`` calls/s vs cpprb.          target >= 1.5x
  atari      84x84x4 uint8, 50k: bytes of cardio ``memory_saving`` vs SB3's default (obs + next_obs);
             ``sample(32)`` calls/s vs SB3 (its torch conversion included, as an agent would use it).
                                                                                    target <= 0.55x bytes, >= 1x
  per        CartPole shapes, 1M: ``sample(256)`` + ``update_priorities`` vs cpprb PrioritizedReplayBuffer.
                                                                                    target >= 1x

Usage: python bench/buffer.py [--cases add,sample,atari,per] [--repeats 3] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import datetime
import gc
import os
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np

from cardio.buffers import CircularBuffer, PrioritizedBuffer

ENVS = 8


def rate(fn: Callable[[], int], seconds: float) -> float:
    """Units per second of ``fn`` (which returns the units it did), run for about ``seconds``."""
    fn()  # warm-up
    done, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        done += fn()
    return done / elapsed


def interleave(contenders: dict[str, Callable[[], int]], repeats: int, seconds: float) -> dict[str, float]:
    """Median rate of each contender over ``repeats`` interleaved rounds."""
    runs: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, fn in contenders.items():
            gc.collect()
            runs[name].append(rate(fn, seconds))
    return {name: statistics.median(r) for name, r in runs.items()}


def cartpole_batch(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    obs = rng.standard_normal((n, 4)).astype(np.float32)
    return {
        "obs": obs,
        "action": rng.integers(0, 2, n),
        "reward": np.ones(n, np.float32),
        "next_obs": obs + 0.1,
        "terminated": rng.random(n) < 0.02,
        "truncated": np.zeros(n, bool),
    }


def fill(buffer: CircularBuffer, make: Callable[[int], dict[str, np.ndarray]], steps: int) -> None:
    pool = [make(i) for i in range(16)]
    for i in range(steps):
        buffer.add(pool[i % 16])


# ---------------------------------------------------------------------------------------------------- cases
def case_add(repeats: int, seconds: float) -> list[tuple[str, float, str, float, str]]:
    import gymnasium as gym
    from stable_baselines3.common.buffers import ReplayBuffer

    rng = np.random.default_rng(0)
    batches = [cartpole_batch(rng, ENVS) for _ in range(64)]
    valid = np.ones(ENVS, bool)
    ours = CircularBuffer(100_000, num_envs=ENVS)
    space = gym.spaces.Box(-np.inf, np.inf, (4,), np.float32)
    sb3 = ReplayBuffer(100_000, space, gym.spaces.Discrete(2), device="cpu", n_envs=1)
    singles = [
        (b["obs"][:1], b["next_obs"][:1], b["action"][:1].reshape(1, 1), b["reward"][:1], b["terminated"][:1])
        for b in batches
    ]
    infos: list[dict] = [{}]

    def ours_add() -> int:
        for b in batches:
            ours.add(b, valid)
        return 64 * ENVS

    def sb3_add() -> int:
        for o, n, a, r, d in singles:
            sb3.add(o, n, a, r, d, infos)
        return 64

    res = interleave({"cardio": ours_add, "sb3": sb3_add}, repeats, seconds)
    return [("add, CartPole, 100k (8-env batch vs 1)", res["cardio"], "SB3", res["sb3"], "transitions/s, >= 10x")]


def case_sample(repeats: int, seconds: float) -> list[tuple[str, float, str, float, str]]:
    import cpprb

    rng = np.random.default_rng(1)
    ours = CircularBuffer(100_000, num_envs=ENVS, seed=0)
    fill(ours, lambda i: cartpole_batch(rng, ENVS), 100_000 // ENVS)
    spec = {"obs": {"shape": 4}, "act": {"shape": 1, "dtype": np.int64}, "rew": {}, "next_obs": {"shape": 4}}
    spec["done"] = {}
    theirs = cpprb.ReplayBuffer(100_000, spec)
    b = cartpole_batch(rng, 100_000)
    theirs.add(obs=b["obs"], act=b["action"], rew=b["reward"], next_obs=b["next_obs"], done=b["terminated"])

    def ours_sample() -> int:
        ours.sample(256)
        return 1

    def cpprb_sample() -> int:
        theirs.sample(256)
        return 1

    res = interleave({"cardio": ours_sample, "cpprb": cpprb_sample}, repeats, seconds)
    return [("sample(256), CartPole, 100k", res["cardio"], "cpprb", res["cpprb"], "calls/s, >= 1.5x")]


def case_atari(repeats: int, seconds: float) -> list[tuple[str, float, str, float, str]]:
    import gymnasium as gym
    import torch
    from stable_baselines3.common.buffers import ReplayBuffer

    torch.set_num_threads(1)
    rng = np.random.default_rng(2)
    frames = rng.integers(0, 256, (64, 84, 84, 4), dtype=np.uint8)
    capacity = 50_000
    ours = CircularBuffer(capacity, num_envs=ENVS, seed=0, memory_saving=True)
    t = 0

    def atari_batch(i: int) -> dict[str, np.ndarray]:
        obs = frames[(np.arange(ENVS) + i) % 64]
        return {
            "obs": obs,
            "action": np.zeros(ENVS, np.int64),
            "reward": np.zeros(ENVS, np.float32),
            "next_obs": frames[(np.arange(ENVS) + i + 1) % 64],
            "terminated": np.zeros(ENVS, bool),
            "truncated": (np.arange(ENVS) + i) % 1000 == 0,  # a time limit now and then: final obs kept aside
        }

    for _ in range(capacity // ENVS + 100):  # wraps around once
        b = atari_batch(t)
        ours.add(b)
        t += 1
    space = gym.spaces.Box(0, 255, (84, 84, 4), np.uint8)
    sb3 = ReplayBuffer(capacity, space, gym.spaces.Discrete(6), device="cpu", n_envs=1)
    for i in range(capacity):
        sb3.add(frames[i % 64][None], frames[(i + 1) % 64][None], np.zeros((1, 1)), np.zeros(1), np.zeros(1), [{}])
    sb3_bytes = sum(v.nbytes for v in vars(sb3).values() if isinstance(v, np.ndarray))

    def ours_sample() -> int:
        ours.sample(32)
        return 1

    def sb3_sample() -> int:
        sb3.sample(32)
        return 1

    res = interleave({"cardio": ours_sample, "sb3": sb3_sample}, repeats, seconds)
    return [
        ("bytes, 84x84x4 uint8, 50k (memory_saving)", ours.nbytes / 2**20, "SB3", sb3_bytes / 2**20, "MiB, <= 0.55x"),
        ("sample(32), 84x84x4 uint8, 50k", res["cardio"], "SB3", res["sb3"], "calls/s, >= 1x"),
    ]


def case_per(repeats: int, seconds: float) -> list[tuple[str, float, str, float, str]]:
    import cpprb

    rng = np.random.default_rng(3)
    capacity = 1_000_000
    ours = PrioritizedBuffer(capacity, num_envs=ENVS, seed=0)
    chunk = cartpole_batch(rng, capacity)
    for i in range(capacity // ENVS):
        ours.add({k: v[i * ENVS : (i + 1) * ENVS] for k, v in chunk.items()})
    spec = {"obs": {"shape": 4}, "act": {"shape": 1, "dtype": np.int64}, "rew": {}, "next_obs": {"shape": 4}}
    spec["done"] = {}
    theirs = cpprb.PrioritizedReplayBuffer(capacity, spec, alpha=0.6)
    theirs.add(
        obs=chunk["obs"], act=chunk["action"], rew=chunk["reward"], next_obs=chunk["next_obs"], done=chunk["terminated"]
    )
    td = [rng.random(256) for _ in range(16)]
    k = [0]

    def ours_step() -> int:
        _, idx = ours.sample(256)
        k[0] += 1
        ours.update_priorities(idx, td[k[0] % 16])
        return 1

    def cpprb_step() -> int:
        s = theirs.sample(256, beta=0.4)
        k[0] += 1
        theirs.update_priorities(s["indexes"], td[k[0] % 16] + 1e-6)
        return 1

    res = interleave({"cardio": ours_step, "cpprb": cpprb_step}, repeats, seconds)
    return [("PER sample(256)+update, 1M", res["cardio"], "cpprb", res["cpprb"], "calls/s, >= 1x")]


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else the platform's processor string."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


CASES = {"add": case_add, "sample": case_sample, "atari": case_atari, "per": case_per}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--repeats", type=int, default=7, help="interleaved rounds (median reported)")
    parser.add_argument("--seconds", type=float, default=0.4, help="seconds per contender per round")
    parser.add_argument("--out", default=None, help="also write the markdown table here")
    args = parser.parse_args()
    rows = []
    for name in args.cases.split(","):
        rows += CASES[name](args.repeats, args.seconds)
        print(rows[-1], flush=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    machine = f"{cpu_model()} x{os.cpu_count()}, {platform.platform()}"
    lines = [
        f"Measured {stamp} on {machine}; median of {args.repeats} interleaved rounds of {args.seconds:g} s.",
        "",
        "| case | cardio | other | other's | ratio | unit, target |",
        "|---|---:|---|---:|---:|---|",
    ]
    for case, ours, other, theirs, unit in rows:
        lines.append(f"| {case} | {ours:,.0f} | {other} | {theirs:,.0f} | {ours / theirs:.2f}x | {unit} |")
    table = "\n".join(lines)
    print(table)
    if args.out:
        with open(args.out, "w") as f:
            f.write(table + "\n")


if __name__ == "__main__":
    main()

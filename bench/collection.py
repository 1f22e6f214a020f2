"""Collection benchmark: a random policy through cardio's ``Gatherer.collect`` into a ``CircularBuffer`` (the
off-policy schedule's path), side by side with the bare gymnasium loop, in one process.

Each pair builds both contenders once, then times them interleaved (bare, cardio, bare, cardio, ...) for
``--repeats`` rounds of about ``--seconds`` of CPU time each; it prints the median env steps per CPU second of
each and the median of the per-round ratios cardio / bare (issue 12's targets: >= 0.70 with one env, >= 0.80
with the native x64).

Pairs
  single     ``gym.make("CartPole-v1")``, ``action_space.sample()``, manual reset  vs  ``make_env(num_envs=1)``
             (SAME_STEP autoreset, the env's own episode statistics: the env ``make train`` builds), gatherer,
             100k buffer.
  native64   ``gym.make_vec(..., 64, vectorization_mode="vector_entry_point")`` stepped with
             ``action_space.sample()``  vs  ``make_env(num_envs=64, vectorization="vector_entry_point",
             autoreset="next_step")``, gatherer, 100k buffer (reset rows masked out of ``add_block``).
  sync8      ``SyncVectorEnv`` of 8 (SAME_STEP)  vs  ``make_env(num_envs=8)``, gatherer, buffer: the sync path.

Usage: python bench/collection.py [--pairs single,native64,sync8] [--repeats 5] [--seconds 1.0]
"""

from __future__ import annotations

import argparse
import functools
import gc
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
from gymnasium.vector import AutoresetMode

from cardio.buffers import CircularBuffer
from cardio.envs import make_env
from cardio.gatherer import Gatherer, Until

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.conftest: the configs as make train composes them

ENV_ID = "CartPole-v1"
CAPACITY = 100_000


def bare_single() -> Callable[[int], int]:
    env = gym.make(ENV_ID)
    env.reset(seed=0)
    env.action_space.seed(0)

    def run(n: int) -> int:
        for _ in range(n):
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            if terminated or truncated:
                env.reset()
        return n

    return run


def bare_vector(num_envs: int, native: bool) -> Callable[[int], int]:
    if native:
        env = gym.make_vec(ENV_ID, num_envs=num_envs, vectorization_mode="vector_entry_point")
    else:
        env = gym.vector.SyncVectorEnv([lambda: gym.make(ENV_ID)] * num_envs, autoreset_mode=AutoresetMode.SAME_STEP)
    env.reset(seed=0)
    env.action_space.seed(0)

    def run(n: int) -> int:
        for _ in range(n):
            env.step(env.action_space.sample())
        return n * num_envs

    return run


def cardio_collect(num_envs: int, **env_options: str) -> Callable[[int], int]:
    env = make_env(ENV_ID, num_envs=num_envs, seed=0, **env_options)  # type: ignore[arg-type]
    gatherer = Gatherer(env, seed=0)
    buffer = CircularBuffer(CAPACITY, num_envs=num_envs, seed=0)

    def run(n: int) -> int:
        # the off-policy schedule's path (Runner.collect): n vector steps straight into the buffer
        return gatherer.collect(buffer, n).written

    return run


def ppo_runner(num_envs: int, **env_options: str) -> Any:
    """A Runner with rl-zoo's PPO CartPole numbers (n_steps 32) on ``num_envs`` copies, as ``make train`` builds it."""
    from tests.conftest import compose_train, shrink

    overrides = ["agent=ppo", "env=CartPole", f"env.num_envs={num_envs}"]
    overrides += [f"env.{key}={value}" for key, value in env_options.items()]
    cfg = shrink(compose_train(overrides), Path(tempfile.mkdtemp()), total_steps=10**9)
    from cardio.build import build_runner

    return build_runner(cfg, logger=None)


def bare_policy_vector(num_envs: int, **env_options: str) -> Callable[[int], int]:
    """The bare loop with the same policy calls: the env stepped with the PPO agent's sampled actions."""
    agent = ppo_runner(num_envs, **env_options).agent
    if env_options:
        env = gym.make_vec(ENV_ID, num_envs=num_envs, vectorization_mode="vector_entry_point")
    else:
        env = gym.vector.SyncVectorEnv([lambda: gym.make(ENV_ID)] * num_envs, autoreset_mode=AutoresetMode.SAME_STEP)
    obs, _ = env.reset(seed=0)

    def run(n: int) -> int:
        nonlocal obs
        for _ in range(n):
            action, _ = agent.act(obs, explore=True)
            obs, *_ = env.step(action)
        return n * num_envs

    return run


def cardio_rollouts(num_envs: int, **env_options: str) -> Callable[[int], int]:
    """The on-policy schedule's collection (``OnPolicySchedule.step`` without its update): rollouts of 32 vector
    steps through the one collection path into the rollout buffer, extras (log_prob, value) and all."""
    runner = ppo_runner(num_envs, **env_options)
    rows = runner.buffer.slots_per_env

    def run(n: int) -> int:  # env steps as the bare loop counts them: vector steps x copies, reset rows included
        before = runner.gatherer._steps
        for _ in range(max(n // rows, 1)):
            runner.buffer.clear()
            runner.collect(until=Until(rows=rows), store_normalized=True)
        return (runner.gatherer._steps - before) * num_envs

    return run


@functools.cache
def trained_dqn() -> Any:
    """A DQN trained on CartPole with rl-zoo's numbers (seed 2, 5e4 steps): its episodes last hundreds of steps."""
    from cardio.build import build_runner
    from tests.conftest import compose_train, shrink

    cfg = shrink(compose_train(["agent=dqn", "env=CartPole", "seed=2"]), Path(tempfile.mkdtemp()), total_steps=50_000)
    cfg.runner.eval_freq, cfg.runner.eval_episodes = 5_000, 5  # best.ckpt: the best of ten evaluations
    runner = build_runner(cfg, logger=None)
    runner.run()
    runner.load(Path(str(cfg.run_dir)) / "best.ckpt")  # its best evaluation (DQN CartPole often falls back late)
    length = runner.evaluate(10)["eval/mean_ep_length"]
    print(f"  trained DQN: {length:.0f} steps per evaluation episode", flush=True)
    return runner


def bare_eval() -> Callable[[int], int]:
    """The bare evaluation loop: one CartPole env, the trained DQN's greedy action per step, reset at each end."""
    agent = trained_dqn().agent
    env = gym.make(ENV_ID)
    obs, _ = env.reset(seed=5)

    def run(n: int) -> int:
        nonlocal obs
        steps = 0
        for _ in range(10):  # 10 episodes, as an evaluation
            while True:
                action, _ = agent.act(obs[None], explore=False)
                obs, _, terminated, truncated, _ = env.step(int(action[0]))
                steps += 1
                if terminated or truncated:
                    obs, _ = env.reset()
                    break
        return steps

    return run


def cardio_eval() -> Callable[[int], int]:
    """``Runner.evaluate(10)``: the eval env (make_env's, one copy) through the one collection path."""
    runner = trained_dqn()

    def run(n: int) -> int:
        runner.evaluate(10)
        return int(sum(runner.last_eval_episodes[1]))

    return run


PAIRS: dict[str, tuple[Callable[[], Callable[[int], int]], Callable[[], Callable[[int], int]]]] = {
    "single": (bare_single, lambda: cardio_collect(1)),
    "native64": (
        lambda: bare_vector(64, native=True),
        lambda: cardio_collect(64, vectorization="vector_entry_point", autoreset="next_step"),
    ),
    "sync8": (lambda: bare_vector(8, native=False), lambda: cardio_collect(8)),
    "ppo_sync8": (lambda: bare_policy_vector(8), lambda: cardio_rollouts(8)),
    "ppo_native64": (
        lambda: bare_policy_vector(64, vectorization="vector_entry_point", autoreset="next_step"),
        lambda: cardio_rollouts(64, vectorization="vector_entry_point", autoreset="next_step"),
    ),
    "eval_dqn": (bare_eval, cardio_eval),
}


def rate(run: Callable[[int], int], seconds: float, chunk: int = 200) -> float:
    """Env steps per CPU second of ``run`` (vector steps in chunks) for about ``seconds`` of CPU time. This
    process's CPU time, not wall time: on a shared machine the wall clock also counts other processes' turns."""
    run(chunk)  # warm-up
    done, start = 0, time.process_time()
    while (elapsed := time.process_time() - start) < seconds:
        done += run(chunk)
    return done / elapsed


def measure(pair: str, repeats: int, seconds: float) -> dict[str, float]:
    """Interleaved rounds of one pair: median steps/s of each side and the median per-round ratio."""
    make_bare, make_cardio = PAIRS[pair]
    bare, cardio = make_bare(), make_cardio()
    bare_rates, cardio_rates = [], []
    for _ in range(repeats):
        gc.collect()
        bare_rates.append(rate(bare, seconds))
        gc.collect()
        cardio_rates.append(rate(cardio, seconds))
    ratios = [c / b for c, b in zip(cardio_rates, bare_rates, strict=True)]
    return {
        "bare": statistics.median(bare_rates),
        "cardio": statistics.median(cardio_rates),
        "ratio": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", default="single,native64,sync8")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=1.0)
    args = parser.parse_args()
    print(f"| pair | bare steps/s | cardio steps/s | cardio / bare (median of {args.repeats}, min-max) |")
    print("|---|---|---|---|")
    for pair in args.pairs.split(","):
        r = measure(pair, args.repeats, args.seconds)
        print(
            f"| {pair} | {r['bare']:,.0f} | {r['cardio']:,.0f} | "
            f"{r['ratio']:.2f} ({r['ratio_min']:.2f}-{r['ratio_max']:.2f}) |",
            flush=True,
        )


if __name__ == "__main__":
    main()

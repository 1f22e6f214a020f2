"""Reptile over CartPole tasks: meta-learning with one Runner, ``update_agent`` and ``reset``.

Nichol et al. 2018, "On First-Order Meta-Learning Algorithms" (arXiv:1803.02999). Each outer iteration draws a
task (a pole length), copies the meta agent into the runner with ``update_agent``, starts afresh with ``reset``
(empty buffer, env steps back to 0), adapts for ``inner_steps`` env steps, then moves the meta agent's network
weights a fraction ``step_size`` towards the adapted ones. Everything else (optimiser moments, counters, the
agent's generator) carries on from the adapted agent, so the next inner run continues its optimiser.

Because every inner run restarts the env-step counter, the agent's step-driven schedules (target syncs, epsilon)
must restart with it: ``tests/test_reset.py`` runs this file and checks the target network syncs in every inner
run. ``python examples/reptile.py --iterations 5``.
"""

from __future__ import annotations

import argparse
import copy
from typing import Any

import numpy as np
import torch

from cardio import CircularBuffer, OffPolicySchedule, Runner
from cardio.agents import DQNConfig
from cardio.envs import make_env

POLE_LENGTHS = (0.25, 0.5, 1.0)
"""The task distribution: CartPole's pole half-length in metres (gymnasium's default is 0.5)."""


def set_pole_length(env: Any, length: float) -> None:
    """Make every copy of a CartPole vector env the task with pole half-length ``length``."""
    for sub in env.envs:
        cartpole = sub.unwrapped
        cartpole.length = length
        cartpole.polemass_length = cartpole.masspole * length


def reptile_step(meta: Any, adapted: Any, step_size: float) -> None:
    """``meta <- meta + step_size * (adapted - meta)`` for network weights; everything else from ``adapted``.

    Args:
        meta: the meta agent (changed in place through ``load_state_dict``).
        adapted: the agent after the inner run.
        step_size: Reptile's outer step size in [0, 1] (1 = take the adapted weights).
    """
    old, state = meta.state_dict(), adapted.state_dict()
    for name, part in state.items():
        is_network = isinstance(part, dict) and part and all(isinstance(v, torch.Tensor) for v in part.values())
        if is_network:  # a torch module's state_dict: move its float tensors
            state[name] = {k: old[name][k].lerp(v, step_size) if v.is_floating_point() else v for k, v in part.items()}
    meta.load_state_dict(state)


def target_params(agent: Any) -> list[torch.Tensor]:
    return [p.detach().clone() for p in agent.target_net.parameters()]


def main(iterations: int = 3, inner_steps: int = 800, step_size: float = 0.5, seed: int = 0) -> list[dict[str, float]]:
    """Run Reptile and return one record per outer iteration: task, inner-run episode return, target synced.

    Args:
        iterations: outer (meta) iterations.
        inner_steps: env steps of each inner run (a multiple of ``train_freq * num_envs`` = 4).
        step_size: Reptile's outer step size.
        seed: seeds torch, the task draws, the env and the agent.
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    env = make_env("CartPole-v1", num_envs=1, seed=seed)
    config = DQNConfig(lr=1e-3, hidden_sizes=(32, 32), target_update_interval=200, exploration_fraction=0.5)
    meta = config.build(env.single_observation_space, env.single_action_space, seed=seed)
    runner = Runner(
        env,
        copy.deepcopy(meta),
        CircularBuffer(5_000, num_envs=1, seed=seed),
        OffPolicySchedule(learning_starts=100, train_freq=4, gradient_steps=1, batch_size=32),
        total_steps=inner_steps,
        seed=seed,
        log_interval=inner_steps,
    )
    records = []
    for iteration in range(iterations):
        task = float(rng.choice(POLE_LENGTHS))
        set_pole_length(runner.gatherer.env, task)
        runner.update_agent(copy.deepcopy(meta))  # the inner run starts from the meta weights
        runner.reset()  # empty buffer, env steps back to 0: the agent's schedules restart
        before = target_params(runner.agent)
        runner.run(inner_steps)
        synced = any(not torch.equal(a, b) for a, b in zip(before, target_params(runner.agent), strict=True))
        reptile_step(meta, runner.agent, step_size)
        records.append(
            {
                "iteration": iteration,
                "pole_length": task,
                "ep_rew_mean": runner.gatherer.stats.metrics().get("rollout/ep_rew_mean", float("nan")),
                "target_synced": float(synced),
            }
        )
        print(
            f"iteration {iteration}: pole {task} m, inner-run return {records[-1]['ep_rew_mean']:.1f}, "
            f"target synced: {synced}"
        )
    env.close()
    return records


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--inner-steps", type=int, default=800)
    parser.add_argument("--step-size", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    main(args.iterations, args.inner_steps, args.step_size, args.seed)

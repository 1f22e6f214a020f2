"""DQN on CartPole-v1 with the rl-zoo hyperparameters: cardio vs Stable-Baselines3, seed by seed.

    .venv/bin/python bench/dqn_cartpole.py --seeds 0 1 2 3 4 [--no-sb3] [--steps 50000] [--out docs/bench_dqn.md]

For each seed, cardio and SB3 run one after the other in this process (interleaved, one torch thread each), with
the same hyperparameters (configs/zoo/dqn/CartPole-v1.yaml; SB3's from the zoo's dqn.yml). Timed: the training loop
only (no evaluation); scored: the final policy's mean return over 10 deterministic episodes on a separate env.
The table reports each library's score and the wall-time ratio SB3 / cardio (> 1: cardio is faster). Absolute
times are not reported: these machines are shared and vary by about 20 %.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cardio.build import build_runner  # noqa: E402
from tests.conftest import compose_train  # noqa: E402


def run_cardio(seed: int, steps: int) -> tuple[float, float]:
    cfg = compose_train([f"seed={seed}", f"runner.total_steps={steps}", "runner.eval_freq=0", "logger=csv"])
    cfg.run_dir = str(ROOT / "outputs" / "bench" / f"dqn_cartpole_seed{seed}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runner = build_runner(cfg)
    start = time.perf_counter()
    while runner.env_steps < runner.total_steps:
        runner.step()
    wall = time.perf_counter() - start
    return runner.evaluate(10)["eval/mean_reward"], wall


def run_sb3(seed: int, steps: int) -> tuple[float, float]:
    import gymnasium as gym
    from stable_baselines3 import DQN
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.monitor import Monitor

    model = DQN(
        "MlpPolicy", gym.make("CartPole-v1"), learning_rate=2.3e-3, batch_size=64, buffer_size=100_000,
        learning_starts=1000, gamma=0.99, target_update_interval=10, train_freq=256, gradient_steps=128,
        exploration_fraction=0.16, exploration_final_eps=0.04, policy_kwargs={"net_arch": [256, 256]},
        seed=seed, device="cpu", verbose=0,
    )  # fmt: skip
    start = time.perf_counter()
    model.learn(total_timesteps=steps)
    wall = time.perf_counter() - start
    eval_env = Monitor(gym.make("CartPole-v1"))
    eval_env.reset(seed=seed + 1000)
    mean, _ = evaluate_policy(model, eval_env, n_eval_episodes=10, deterministic=True)
    return float(mean), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--no-sb3", action="store_true", help="cardio only")
    parser.add_argument("--out", type=Path, default=None, help="also write the table (markdown) here")
    args = parser.parse_args()
    torch.set_num_threads(1)

    lines = ["| seed | cardio eval | SB3 eval | time ratio SB3/cardio |", "|---|---|---|---|"]
    scores, ratios = [], []
    print(lines[0], lines[1], sep="\n", flush=True)
    for seed in args.seeds:
        score, wall = run_cardio(seed, args.steps)
        sb3_score, ratio = "-", "-"
        if not args.no_sb3:
            s, sb3_wall = run_sb3(seed, args.steps)
            sb3_score, ratio = f"{s:.1f}", f"{sb3_wall / wall:.2f}"
            ratios.append(sb3_wall / wall)
        scores.append(score)
        lines.append(f"| {seed} | {score:.1f} | {sb3_score} | {ratio} |")
        print(lines[-1], flush=True)
    solved = sum(s >= 475 for s in scores)
    summary = f"cardio: {solved}/{len(scores)} seeds >= 475 at {args.steps} steps"
    if ratios:
        summary += f"; median time ratio SB3/cardio {statistics.median(ratios):.2f}"
    lines += ["", summary]
    print(summary)
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

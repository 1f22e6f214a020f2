"""Evaluation curves of one held-out rl-zoo pair, cardio beside SB3 on the same numbers (bench/zoo_heldout.py).

    nice -n 10 python bench/zoo_curves.py --zoo <rl-zoo checkout> --pair ppo_hopper --seeds 0 1 2 3 4
    python bench/zoo_curves.py --table --pair ppo_hopper --at 900

The held-out table reads one final evaluation per run. Where that number jumps between runs (a policy that
flips between two behaviours from one update to the next), the final says little; this bench evaluates every
``--every`` env steps instead (``--episodes`` deterministic episodes on a separate env seeded
``seed + EVAL_SEED_OFFSET``, the training normalisation statistics frozen, the env's own returns): SB3 through
its ``EvalCallback`` (statistics synced at each evaluation), cardio through ``runner.eval_freq``. Both train on
the pair's budget. One JSON line per run in ``docs/bench/zoo_curves.jsonl``; runs already there are skipped.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from zoo_heldout import PAIRS, RUNS, Pair, commit, sb3_model, steps_of  # noqa: E402

from scripts.import_zoo import load_algo  # noqa: E402

RESULTS = ROOT / "docs" / "bench" / "zoo_curves.jsonl"


def curve_sb3(pair: Pair, zoo: Path, seed: int, steps: int, every: int, episodes: int) -> list[list[float]]:
    from stable_baselines3.common.callbacks import EvalCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    from cardio.runner import EVAL_SEED_OFFSET

    entry = {**load_algo(zoo, pair.algo)[pair.zoo_id], "n_timesteps": steps}
    model, env = sb3_model(pair, entry, seed)
    eval_env = make_vec_env(pair.env_id, n_envs=1, seed=seed + EVAL_SEED_OFFSET)
    if isinstance(env, VecNormalize):  # EvalCallback copies the training statistics in before each evaluation
        eval_env = VecNormalize(eval_env, training=False, norm_reward=False)
    callback = EvalCallback(  # it keeps the evaluations only with a log_path (evaluations.npz there)
        eval_env, n_eval_episodes=episodes, eval_freq=max(every // env.num_envs, 1),
        log_path=str(RUNS / f"curves_sb3_{pair.algo}_{pair.env_config}_s{seed}"), verbose=0,
    )  # fmt: skip
    model.learn(total_timesteps=steps, callback=callback)
    found = (callback.evaluations_timesteps, callback.evaluations_results, callback.evaluations_length)
    return [[int(t), float(np.mean(r)), float(np.mean(n))] for t, r, n in zip(*found, strict=True)]


def curve_cardio(pair: Pair, seed: int, steps: int, every: int, episodes: int) -> list[list[float]]:
    import warnings

    from cardio.build import build_runner
    from tests.conftest import compose_train

    run_dir = RUNS / f"curves_{pair.algo}_{pair.env_config}_s{seed}"
    cfg = compose_train([
        f"agent={pair.algo}", f"env={pair.env_config}", f"zoo={pair.algo}/{pair.env_id}", f"seed={seed}",
        f"runner.total_steps={steps}", f"runner.eval_freq={every}", f"runner.eval_episodes={episodes}",
        "runner.checkpoint_dir=null", f"run_dir={run_dir}", "logger=csv",
    ])  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runner = build_runner(cfg)
    runner.run()
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [
        [int(r["step"]), float(r["eval/mean_reward"]), float(r["eval/mean_ep_length"])]
        for r in rows
        if "eval/mean_reward" in r
    ]


def load_results() -> list[dict[str, Any]]:
    if not RESULTS.exists():
        return []
    return [json.loads(line) for line in RESULTS.read_text().splitlines() if line.strip()]


def table(pair: str, at: float) -> str:
    """Per run: the evaluations, how many reach ``at``, and the final; then the totals per library."""
    lines = [f"{pair}: evaluation curves (mean return of each evaluation), evaluations at {at:g} or more", ""]
    totals: dict[str, list[int]] = {}
    for r in sorted((r for r in load_results() if r["pair"] == pair), key=lambda r: (r["seed"], r["lib"])):
        values = [e[1] for e in r["evals"]]
        reached = sum(v >= at for v in values)
        total = totals.setdefault(r["lib"], [0, 0, 0])
        total[0] += reached
        total[1] += len(values)
        total[2] += values[-1] >= at
        curve = " ".join(f"{v:.0f}" for v in values)
        lines.append(f"seed {r['seed']} {r['lib']:6s} {reached:2d}/{len(values)}  final {values[-1]:7.1f}  [{curve}]")
    lines.append("")
    for lib, (reached, count, finals) in totals.items():
        lines.append(f"{lib}: {reached}/{count} evaluations at {at:g} or more; finals at {at:g} or more: {finals}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--zoo", type=Path, default=None, help="rl-zoo checkout (needed for the SB3 runs)")
    parser.add_argument("--pair", choices=list(PAIRS), default="ppo_hopper")
    parser.add_argument("--libs", nargs="+", choices=("cardio", "sb3"), default=["sb3", "cardio"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--every", type=int, default=2048, help="env steps between evaluations")
    parser.add_argument("--episodes", type=int, default=5, help="episodes per evaluation")
    parser.add_argument("--table", action="store_true", help="only print the table")
    parser.add_argument("--at", type=float, default=900.0, help="the table counts evaluations at this or more")
    args = parser.parse_args()
    if not args.table:
        import torch

        torch.set_num_threads(1)
        pair = PAIRS[args.pair]
        steps = steps_of(pair)
        for seed in args.seeds:
            for lib in args.libs:
                if any(r["pair"] == args.pair and r["lib"] == lib and r["seed"] == seed for r in load_results()):
                    continue
                started = time.perf_counter()
                if lib == "sb3":
                    if args.zoo is None:
                        parser.error("--zoo (an rl-zoo checkout) is needed for SB3")
                    evals = curve_sb3(pair, args.zoo, seed, steps, args.every, args.episodes)
                else:
                    evals = curve_cardio(pair, seed, steps, args.every, args.episodes)
                if not evals:
                    raise RuntimeError(f"{lib} seed {seed}: no evaluation was recorded")
                record = {"pair": args.pair, "lib": lib, "seed": seed, "steps": steps, "every": args.every,
                          "episodes": args.episodes, "evals": evals, "wall_s": time.perf_counter() - started,
                          "commit": commit()}  # fmt: skip
                with RESULTS.open("a") as f:
                    f.write(json.dumps(record) + "\n")
                print(f"{args.pair} {lib} seed {seed}: final {evals[-1][1]:.1f}", flush=True)
    print(table(args.pair, args.at))


if __name__ == "__main__":
    main()

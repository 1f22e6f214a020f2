"""Many seeds in one process against separate single-seed runs: whole-run wall time, interleaved.

    python bench/multiseed.py [--seeds 1 2 5] [--repeats 1] [--steps 4000] [--cases small zoo]

For each case and each S, two ways of training seeds 0..S-1 run back to back: ``scripts/train.py seeds=[...]``
(one process, updates batched over seeds, cardio/multiseed.py) and S processes of ``scripts/train.py seed=s`` one
after the other, as a seed loop or ``-m seed=...`` would. Times are whole processes (start-up, JIT compilation,
collection, updates, the final evaluation), reported as ratios to one single-seed run of the same round:
``S separate`` is about S by construction, ``S together`` is what batching buys. Cases: DQN CartPole with the
rl-zoo numbers and a [64, 64] network (``small``) or the zoo's [256, 256] (``zoo``). Rows are appended to
``docs/bench/multiseed.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "bench" / "multiseed.jsonl"
CASES = {
    "small": ["agent=dqn_jax", "env=CartPole", "agent.hidden_sizes=[64,64]"],
    "zoo": ["agent=dqn_jax", "env=CartPole"],
}
"""Hydra overrides per case (the rl-zoo file for dqn on CartPole-v1 applies itself)."""


def timed_run(overrides: list[str], steps: int) -> float:
    """Wall time of one ``scripts/train.py`` process (final evaluation only, no logger sinks)."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable, "scripts/train.py", *overrides, f"runner.total_steps={steps}", "runner.eval_freq=0",
            "runner.eval_episodes=2", "logger=csv", f"hydra.run.dir={tmp}/run",
        ]  # fmt: skip
        start = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 5], help="values of S")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--steps", type=int, default=4000, help="env steps per seed")
    parser.add_argument(
        "--no-separate", action="store_true", help="time only one seed and S together (separate = S x one seed)"
    )
    args = parser.parse_args()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    for repeat in range(args.repeats):
        for case in args.cases:
            one = timed_run([*CASES[case], "seed=0"], args.steps)
            for s in args.seeds:
                seeds = list(range(s))
                together = timed_run([*CASES[case], f"seeds=[{','.join(map(str, seeds))}]"], args.steps)
                if args.no_separate:
                    separate = s * one
                else:
                    separate = one + sum(timed_run([*CASES[case], f"seed={seed}"], args.steps) for seed in seeds[1:])
                row = {"case": case, "S": s, "steps": args.steps, "repeat": repeat, "one": one,
                       "together": together, "separate": separate, "separate_timed": not args.no_separate}  # fmt: skip
                with RESULTS.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                print(
                    f"{case} S={s}: together {together / one:.2f}x one seed, separate {separate / one:.2f}x", flush=True
                )
    rows = [json.loads(line) for line in RESULTS.read_text().splitlines() if line.strip()]
    for case in args.cases:
        for s in args.seeds:
            mine = [r for r in rows if r["case"] == case and r["S"] == s]
            if mine:
                ratio = statistics.median(r["together"] / r["one"] for r in mine)
                print(f"{case} S={s}: median together/one {ratio:.2f} over {len(mine)} rounds")


if __name__ == "__main__":
    main()

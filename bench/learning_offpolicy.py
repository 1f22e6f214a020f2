"""Multi-seed learning table for the off-policy and recurrent agents (issue 5, "Must show").

Each case composes ``configs/train.yaml`` with its overrides (the rl-zoo file for the pair applies itself), trains
one seed at a time, evaluates every ``eval_freq`` env steps, and appends one JSON line per evaluation to
``docs/bench/learning_offpolicy.jsonl``: ``{case, seed, step, mean_reward, ...}``. A case passes when at least
``min_pass`` of its seeds end at or above ``threshold``; a comparison case (DRQN vs DQN) passes when the mean final
return of the case beats its ``baseline`` case by ``margin``. The table goes to ``docs/learning_offpolicy.md``.

Runs already in the JSONL are skipped, so an interrupted bench resumes. Usage::

    nice -n 10 python bench/learning_offpolicy.py sac_pendulum td3_pendulum ddpg_pendulum
    python bench/learning_offpolicy.py --table          # only rebuild the table from the JSONL
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from cardio.build import build_runner

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "bench" / "learning_offpolicy.jsonl"
TABLE = ROOT / "docs" / "learning_offpolicy.md"


@dataclass(frozen=True)
class Case:
    """One agent on one env with fixed hyperparameters, run over several seeds."""

    overrides: tuple[str, ...]
    """Hydra overrides on top of ``train.yaml`` (agent, env, anything the zoo file does not set)."""
    threshold: float | None = None
    """Final ``eval/mean_reward`` a seed must reach (``None``: compared against ``baseline`` instead)."""
    min_pass: int = 4
    """Seeds out of ``seeds`` that must reach ``threshold``."""
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    """Seeds run."""
    eval_freq: int = 2_000
    """Env steps between evaluations (the learning curve's resolution)."""
    baseline: str | None = None
    """Case whose mean final return this one must beat by ``margin``."""
    margin: float = 0.0
    """How much better than ``baseline`` counts as clearly better."""
    ci: bool = True
    """Feasible on a 2-core CPU in under ~15 minutes per seed."""
    notes: str = ""
    extra: dict[str, str] = field(default_factory=dict)


CASES: dict[str, Case] = {
    "sac_pendulum": Case(("agent=sac", "env=Pendulum"), threshold=-200.0),
    "td3_pendulum": Case(("agent=td3", "env=Pendulum"), threshold=-200.0),
    "ddpg_pendulum": Case(("agent=ddpg", "env=Pendulum"), threshold=-250.0),
    "dqn_cartpole_novel": Case(("agent=dqn", "env=CartPoleNoVel"), eval_freq=5_000),
    "drqn_cartpole_novel": Case(
        ("agent=drqn", "env=CartPoleNoVel"),
        eval_freq=5_000,
        baseline="dqn_cartpole_novel",
        margin=50.0,
    ),
    "sac_lunarlandercontinuous": Case(
        ("agent=sac", "env=LunarLanderContinuous"), threshold=200.0, eval_freq=25_000, ci=False
    ),
}


def run_one(name: str, case: Case, seed: int) -> list[dict[str, float]]:
    """Train one seed of a case; returns its evaluations (also appended to the JSONL as they come)."""
    torch.set_num_threads(1)
    overrides = [*case.overrides, f"seed={seed}", f"runner.eval_freq={case.eval_freq}", "logger=csv"]
    with initialize_config_dir(version_base=None, config_dir=str(ROOT / "configs")):
        cfg = compose("train", overrides=[*overrides, f"run_dir={ROOT}/outputs/bench/{name}/seed{seed}"])
    rows: list[dict[str, float]] = []
    started = time.perf_counter()

    class Record:
        def on_eval(self, runner, metrics: dict[str, float]) -> None:
            row = {"case": name, "seed": seed, "step": runner.env_steps, "wall_s": time.perf_counter() - started}
            row |= {k.split("/")[1]: v for k, v in metrics.items()}
            rows.append(row)
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            with RESULTS.open("a") as f:
                f.write(json.dumps(row) + "\n")

    runner = build_runner(cfg, callbacks=[Record()])
    runner.run()
    final = rows[-1]
    final_row = {**final, "final": True, "total_steps": OmegaConf.select(cfg, "runner.total_steps")}
    with RESULTS.open("a") as f:
        f.write(json.dumps(final_row) + "\n")
    return rows


def load() -> list[dict]:
    return [json.loads(line) for line in RESULTS.read_text().splitlines()] if RESULTS.exists() else []


def finals(rows: list[dict], name: str) -> dict[int, float]:
    return {r["seed"]: r["mean_reward"] for r in rows if r["case"] == name and r.get("final")}


def table(rows: list[dict]) -> str:
    """Markdown table: per case, final return per seed, mean, and the verdict."""
    lines = [
        "| case | seeds | final eval/mean_reward per seed | mean | criterion | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for name, case in CASES.items():
        got = finals(rows, name)
        if not got:
            lines.append(f"| {name} | 0 | not run | | | |")
            continue
        per_seed = ", ".join(f"{s}: {v:.0f}" for s, v in sorted(got.items()))
        mean = float(np.mean(list(got.values())))
        if case.threshold is not None:
            passed = sum(v >= case.threshold for v in got.values())
            crit = f">= {case.threshold:.0f} in {case.min_pass}/{len(case.seeds)} seeds"
            verdict = f"{passed}/{len(got)} pass" + (" ✅" if passed >= case.min_pass else " ❌")
        elif case.baseline is not None:
            base = finals(rows, case.baseline)
            base_mean = float(np.mean(list(base.values()))) if base else float("nan")
            crit = f"mean > {case.baseline} mean + {case.margin:.0f}"
            verdict = f"{mean:.0f} vs {base_mean:.0f}" + (" ✅" if mean > base_mean + case.margin else " ❌")
        else:
            crit, verdict = "baseline", ""
        lines.append(f"| {name} | {len(got)} | {per_seed} | {mean:.1f} | {crit} | {verdict} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("cases", nargs="*", help=f"cases to run (default: CI cases), from {sorted(CASES)}")
    parser.add_argument("--seeds", type=int, nargs="*", help="override the case's seeds")
    parser.add_argument("--table", action="store_true", help="only rebuild the table from the JSONL")
    args = parser.parse_args()
    os.chdir(ROOT)
    if not args.table:
        for name in args.cases or [n for n, c in CASES.items() if c.ci]:
            case = CASES[name]
            for seed in args.seeds if args.seeds is not None else case.seeds:
                if seed in finals(load(), name):
                    continue
                rows = run_one(name, case, seed)
                print(f"{name} seed {seed}: {rows[-1]['mean_reward']:.1f} ({rows[-1]['wall_s']:.0f} s)", flush=True)
    TABLE.write_text("# Off-policy and recurrent agents: learning table\n\n" + table(load()))
    print(TABLE.read_text())


if __name__ == "__main__":
    main()

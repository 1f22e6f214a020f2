"""Many seeds in one process against separate single-seed runs: whole-run time, interleaved.

    python bench/multiseed.py [--seeds 1 2 5 10] [--repeats 3] [--steps 5000] [--cases small zoo] [--device cuda]

Each round, for each case, trains seeds 0..S-1 both ways: ``scripts/train.py seeds=[...]`` (one process, acting and
updates batched over seeds, cardio/multiseed.py) and single-seed processes ``scripts/train.py seed=s`` one after
the other, as ``make multirun seed=...`` does with the basic launcher. The two kinds alternate (separate seed 0,
together S=1, separate seed 1, together S=2, separate seeds 2-4, together S=5, ...) so a change of machine load
hits both; "S separate" is the sum of the first S single-seed processes of the round. Times are whole processes
(start-up, JIT compilation, collection, updates, the final evaluation): wall time, and the child's CPU time
(user + system), which a loaded machine disturbs less. Ratios: S together / one seed together, and S separate /
S together. Cases: DQN CartPole with the rl-zoo numbers and a [64, 64] network (``small``) or the zoo's [256, 256]
(``zoo``). Rows (``kind: timing``) are appended to ``docs/bench/multiseed.jsonl`` as each S finishes.

    python bench/multiseed.py --learning dqn_cartpole sac_pendulum

trains a ``bench/learning.py`` case's JAX twin on all its seeds in one process (``seeds=[0,1,2,3,4]``) with the
case's own protocol (its zoo numbers and steps, an evaluation every ``eval_freq`` env steps and at the end, 10
deterministic episodes on an env seeded ``seed + EVAL_SEED_OFFSET``), appends one row per seed (``kind:
learning``) and prints each seed's final beside the single-seed ``cardio_jax`` row of ``docs/bench/learning.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "bench" / "multiseed.jsonl"
CASES = {
    "small": ["agent=dqn_jax", "env=CartPole", "agent.hidden_sizes=[64,64]"],
    "zoo": ["agent=dqn_jax", "env=CartPole"],
}
"""Hydra overrides per case (the rl-zoo file for dqn on CartPole-v1 applies itself)."""


def timed_run(overrides: list[str], steps: int) -> tuple[float, float]:
    """Wall and CPU time (user + system, the process and its threads) of one ``scripts/train.py`` process
    (final evaluation of 2 episodes only, csv logger)."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable, "scripts/train.py", *overrides, f"runner.total_steps={steps}", "runner.eval_freq=0",
            "runner.eval_episodes=2", "logger=csv", f"hydra.run.dir={tmp}/run",
        ]  # fmt: skip
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run(cmd, cwd=ROOT, check=False, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if done.returncode != 0:  # e.g. device=cuda without a GPU: train.py's one line, not a bare exit status
            tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise SystemExit(f"{' '.join(cmd[1:])}: exit {done.returncode}: {tail}")
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def timing_round(case: str, seeds: list[int], steps: int, repeat: int, device: str = "cpu") -> None:
    """One interleaved round of ``case`` (module docstring) on ``device`` (the runs' ``device=``); one row per S."""
    overrides = [*CASES[case], f"device={device}"]
    separate: list[tuple[float, float]] = []  # single-seed processes of seeds 0, 1, ... in order
    one: tuple[float, float] | None = None  # S = 1 together: the denominator
    for s in sorted(seeds):
        while len(separate) < s:  # the separate runs this S needs, before its together run
            separate.append(timed_run([*overrides, f"seed={len(separate)}"], steps))
        load = os.getloadavg()[0]
        together = timed_run([*overrides, f"seeds=[{','.join(map(str, range(s)))}]"], steps)
        one = together if s == 1 else one
        row = {
            "kind": "timing", "case": case, "S": s, "steps": steps, "repeat": repeat, "load": load, "device": device,
            "together_wall": together[0], "together_cpu": together[1],
            "separate_wall": sum(w for w, _ in separate[:s]), "separate_cpu": sum(c for _, c in separate[:s]),
            "one_wall": None if one is None else one[0], "one_cpu": None if one is None else one[1],
        }  # fmt: skip
        with RESULTS.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(f"{case} S={s} round {repeat}: {json.dumps(row)}", flush=True)


def profile(case: str, num_seeds: int, steps: int) -> dict[str, float]:
    """Where one in-process run of ``case`` with ``num_seeds`` seeds spends its CPU time (this process and its
    threads, so a loaded machine disturbs it less than wall time): the jitted vmapped update phases, the batched
    acting call, the envs, replay sampling and storing, and the rest (Python bookkeeping, logging, evaluation).
    Build and JIT compilation happen inside (the first calls), as in a whole run, but not the interpreter start."""
    import warnings

    sys.path.insert(0, str(ROOT))
    from cardio import multiseed
    from cardio.buffers.circular import CircularBuffer
    from cardio.build import build_runner
    from cardio.multiseed import MultiSeedRunner, SeedStack, seed_configs
    from tests.conftest import compose_train

    spent: dict[str, float] = {}

    def timed(cls: Any, name: str, label: str) -> None:
        inner = getattr(cls, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.process_time()
            try:
                return inner(*args, **kwargs)
            finally:
                spent[label] = spent.get(label, 0.0) + time.process_time() - start

        setattr(cls, name, wrapper)

    timed(SeedStack, "learn", "update (vmapped, jitted phase)")
    timed(SeedStack, "act", "acting (vmapped policy)")
    timed(CircularBuffer, "sample", "replay sample")
    timed(CircularBuffer, "add_block", "replay writes")
    lockstep = multiseed.collect_lockstep  # the seeds' envs and their bookkeeping, acting and writes inside
    timed(multiseed, "collect_lockstep", "collection (envs + bookkeeping)")
    start = time.process_time()
    cfg = compose_train([*CASES[case], f"runner.total_steps={steps}", "runner.eval_freq=0", "runner.eval_episodes=2",
                         "logger=csv", f"run_dir={tempfile.mkdtemp()}"])  # fmt: skip
    cfg.seeds = list(range(num_seeds))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runners = [build_runner(one) for one in seed_configs(cfg)]
    multi = MultiSeedRunner(runners, list(range(num_seeds)))
    spent["build (envs, agents, buffers)"] = time.process_time() - start
    multi.run()
    multiseed.collect_lockstep = lockstep  # type: ignore[attr-defined]
    total = time.process_time() - start
    inside = ("acting (vmapped policy)", "replay writes")  # timed within the collection too: counted once
    spent["collection (envs + bookkeeping)"] -= sum(spent.get(label, 0.0) for label in inside)
    spent["rest (Python loop, logging, final evaluation)"] = total - sum(spent.values())
    print(f"{case} S={num_seeds}, {steps} env steps per seed: {total:.1f} s CPU")
    for label, secs in spent.items():
        print(f"  {label:48s} {secs:7.1f} s  {secs / total:6.1%}")
    return {**spent, "total": total}


def run_learning(name: str) -> None:
    """All seeds of the ``bench/learning.py`` case ``name`` in one process (module docstring); one row per seed."""
    import warnings

    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "bench"))
    from learning import CASES as LEARNING
    from learning import case_config, load_results

    from cardio.build import build_runner
    from cardio.multiseed import MultiSeedRunner, seed_configs

    case = LEARNING[name]
    cfg = case_config(case, case.seeds[0], "cardio_jax")
    cfg.seeds = list(case.seeds)
    cfg.run_dir = str(ROOT / "outputs" / "bench" / f"multiseed_{name}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runners = [build_runner(one) for one in seed_configs(cfg)]
    evals: list[list[list[float]]] = [[] for _ in runners]
    for i, runner in enumerate(runners):  # record each evaluation as bench/learning.py does
        evaluate = runner.evaluate

        def recorded(episodes: int | None = None, i: int = i, runner: Any = runner, evaluate: Any = evaluate) -> Any:
            metrics = evaluate(episodes)
            evals[i].append([runner.env_steps, metrics["eval/mean_reward"], metrics["eval/std_reward"]])
            print(f"{name} seed {case.seeds[i]} step {runner.env_steps}: {metrics['eval/mean_reward']:.1f}", flush=True)
            return metrics

        runner.evaluate = recorded  # type: ignore[method-assign]
    multi = MultiSeedRunner(runners, list(case.seeds))
    start = time.perf_counter()
    multi.run()
    wall = time.perf_counter() - start
    single = {r["seed"]: r["final"] for r in load_results() if r["case"] == name and r.get("lib") == "cardio_jax"}
    for seed, curve in zip(case.seeds, evals, strict=True):
        row = {"kind": "learning", "case": name, "seed": seed, "S": len(case.seeds), "evals": curve,
               "final": curve[-1][1], "wall_all_seeds": wall, "single_seed_final": single.get(seed)}  # fmt: skip
        with RESULTS.open("a") as f:
            f.write(json.dumps(row) + "\n")
        same = "-" if seed not in single else "same" if single[seed] == curve[-1][1] else "DIFFERENT"
        print(f"{name} seed {seed}: multi-seed final {curve[-1][1]:.1f}, single-seed {single.get(seed)} ({same})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learning", nargs="+", default=None, help="bench/learning.py cases to run multi-seed")
    parser.add_argument("--table", action="store_true", help="only print the timing table from the results file")
    parser.add_argument("--profile", type=int, nargs="+", default=None, help="values of S to profile in-process")
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[1, 2, 5, 10], help="values of S (1 first: the denominator)"
    )
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--steps", type=int, default=5000, help="env steps per seed")
    parser.add_argument("--device", default="cpu", help="timing rounds: the runs' device= (cpu, cuda, auto)")
    args = parser.parse_args()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    if args.table:
        summarise_timing(args.cases, args.seeds, args.device)
        return
    if args.profile:
        for case in args.cases:
            for s in args.profile:
                row = {"kind": "profile", "case": case, "S": s, "steps": args.steps, **profile(case, s, args.steps)}
                with RESULTS.open("a") as f:
                    f.write(json.dumps(row) + "\n")
        return
    if args.learning:
        for name in args.learning:
            run_learning(name)
        return
    for repeat in range(args.repeats):
        for case in args.cases if repeat % 2 == 0 else args.cases[::-1]:  # alternate which case goes first
            timing_round(case, args.seeds, args.steps, repeat, args.device)
    summarise_timing(args.cases, args.seeds, args.device)


def summarise_timing(cases: list[str], seeds: list[int], device: str = "cpu") -> None:
    """The timing rows of the results file as a markdown table: per case and S, the median over rounds of
    S together / one seed together and S separate / S together, in CPU time and wall time. Only the rows of
    ``device`` (rows written before rows named their device ran on the CPU): a GPU round never joins a CPU one."""
    rows = [json.loads(line) for line in RESULTS.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r.get("kind") == "timing" and r["one_wall"] and r.get("device", "cpu") == device]
    print("| case | S | rounds | load | together / one (CPU) | separate / together (CPU) | together / one (wall) "
          "| separate / together (wall) |")  # fmt: skip
    print("|---" * 8 + "|")
    for case in cases:
        for s in seeds:
            mine = [r for r in rows if r["case"] == case and r["S"] == s]
            if not mine:
                continue
            cells = []
            for unit in ("cpu", "wall"):
                cells.append(statistics.median(r[f"together_{unit}"] / r[f"one_{unit}"] for r in mine))
                cells.append(statistics.median(r[f"separate_{unit}"] / r[f"together_{unit}"] for r in mine))
            load = "-".join(f"{x:.0f}" for x in sorted({min(r["load"] for r in mine), max(r["load"] for r in mine)}))
            print(f"| {case} | {s} | {len(mine)} | {load} | " + " | ".join(f"{c:.2f}" for c in cells) + " |")


if __name__ == "__main__":
    main()

"""Start-up benchmark: wall time from launching a process to its first env step, against the bare imports.

    python bench/startup.py [--repeats 3]

Each variant is a fresh ``python`` process, timed from just before it is launched to the moment its first env
step returns (the child prints ``time.time()`` and its own CPU seconds there; for the floors, after their
imports). Variants run interleaved round by round; medians are printed, and each run's CPU cost above the floor
that it cannot avoid (CPU seconds are what a quiet machine's wall time would be; on a loaded one the wall
time stretches, the CPU time hardly):

  python          ``python -c pass``: the interpreter.
  torch           ``import torch, torch._dynamo``: the framework a torch run pays before anything of cardio's
                  (``Adam.step`` imports ``torch._dynamo`` unconditionally in torch 2.13).
  torch run       ``scripts/train.py agent=dqn env=CartPole`` (zoo numbers, console logger) up to the first env
                  step, through Hydra's entry point exactly as a user runs it.
  jax             ``import jax, jax.numpy, optax``: the JAX framework floor.
  jax run         ``scripts/train.py agent=dqn_jax env=CartPole``, the same way (must not import torch).
  random run      Hydra's config composed, ``make_env`` + ``CircularBuffer`` + ``Gatherer`` built, one random-
                  policy step: everything a JAX (or any non-torch) run needs besides its framework. Reports
                  whether torch was imported anyway.

Issue 12's target: a run's start-up no more than 1.5 s above its framework floor.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

REPORT = """
import resource, sys, time
def report():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print("FIRST_STEP", time.time(), usage.ru_utime + usage.ru_stime, "torch" in sys.modules, flush=True)
"""

PROBE = (
    REPORT
    + """
import os
import cardio.gatherer as gatherer
first_collect = gatherer.Gatherer.collect
def collect(self, sink, steps=None, *args, **kwargs):  # the one collection path: its first step, then stop
    first_collect(self, sink, 1, *args, **kwargs)
    report()
    os._exit(0)
gatherer.Gatherer.collect = collect
"""
)

TRAIN_RUN = (
    PROBE
    + """
import runpy
sys.argv = ["scripts/train.py", "agent=AGENT", "env=CartPole", "runner.eval_freq=0", "hydra.run.dir=" + sys.argv[1]]
runpy.run_path("scripts/train.py", run_name="__main__")
"""
)

RANDOM_RUN = (
    PROBE
    + """
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from cardio.buffers.circular import CircularBuffer
with initialize_config_dir(config_dir=os.path.abspath("configs"), version_base=None):
    cfg = compose("train", overrides=["env=CartPole"])
env = instantiate(cfg.env, seed=0, _convert_="all")
buffer = CircularBuffer(1000, num_envs=env.num_envs)
g = gatherer.Gatherer(env, seed=0)
g.collect(buffer, 1)
"""
)

VARIANTS = {
    "python": REPORT + "report()",
    "torch": REPORT + "import torch, torch._dynamo; report()",
    "torch run": TRAIN_RUN.replace("AGENT", "dqn"),
    "jax": REPORT + "import jax, jax.numpy, optax; report()",
    "jax run": TRAIN_RUN.replace("AGENT", "dqn_jax"),
    "random run": RANDOM_RUN,
}


def launch(code: str, run_dir: str) -> tuple[float, float, bool]:
    """Wall seconds from launch to the child's first env step, the child's CPU seconds (user + system) by then,
    and whether it had imported torch."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HYDRA_FULL_ERROR": "1"}
    start = time.time()
    out = subprocess.run(
        [sys.executable, "-c", code, run_dir], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    for line in out.stdout.splitlines():
        if line.startswith("FIRST_STEP"):
            _, stamp, cpu, torch_loaded = line.split()
            return float(stamp) - start, float(cpu), torch_loaded == "True"
    raise RuntimeError(f"no first step in the child's output:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    walls: dict[str, list[float]] = {name: [] for name in VARIANTS}
    cpus: dict[str, list[float]] = {name: [] for name in VARIANTS}
    torch_loaded: dict[str, bool] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for name, code in VARIANTS.items():
                wall, cpu, torch_loaded[name] = launch(code, str(Path(tmp) / f"{name.replace(' ', '_')}{r}"))
                walls[name].append(wall)
                cpus[name].append(cpu)
            print(f"round {r}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in walls.items()), flush=True)
    # CPU seconds hardly move with the machine's load; wall seconds do (both are printed).
    floors = {"torch run": "torch", "jax run": "jax", "random run": "python"}
    print("| variant | wall s to first env step | CPU s | CPU s above its floor | torch imported |")
    print("|---|---|---|---|---|")
    for name in VARIANTS:
        floor = floors.get(name)
        above = (
            f"{statistics.median(a - b for a, b in zip(cpus[name], cpus[floor], strict=True)):.2f} over {floor}"
            if floor
            else "-"
        )
        print(
            f"| {name} | {statistics.median(walls[name]):.2f} | {statistics.median(cpus[name]):.2f} | {above} | "
            f"{torch_loaded[name]} |"
        )


if __name__ == "__main__":
    main()

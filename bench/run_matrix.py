"""A fixed matrix of short training runs whose outputs must stay bit for bit the same across a refactor.

Every case is a real ``scripts/train.py`` (or ``scripts/record.py``) command line, run exactly as ``make train``
runs it, in a subprocess with ``cwd=<repo>`` and ``PYTHONPATH=<repo>``, CPU only, ``torch_threads=1``,
``logger=csv``, each in its own run dir. The manifest keeps, per case, content hashes of

* ``weights.npz``: one sha256 per array (dtype, shape and bytes), sorted by name;
* ``progress.csv``: one sha256 per column, plus the column order and row count, without the wall-clock columns
  (``time/fps``, ``time/time_elapsed``; see :data:`WALL_CLOCK_COLUMNS`), so a comparison names the metric that moved;
* ``evaluations.npz``: one sha256 per array;
* ``monitor.csv``: the ``r`` and ``l`` columns (episode returns and lengths; ``t`` and the header are wall clock);
* a multi-seed run: the same for each ``seed_<s>/`` and ``summary.csv`` of the run dir;
* a recorded Minari dataset: a sha256 per file under its folder (h5py writes no timestamps by default, so the
  bytes repeat) and one per field (``observations``, ``actions``...) over the arrays read back.

Every case is deterministic run to run on one machine: the whole matrix was recorded twice at the baseline
commit with identical manifests. The children get ``PYTHONHASHSEED=0`` and one thread per numeric library
(:func:`child_env`), so that neither hashing nor a thread count can reorder anything.

Usage::

    python bench/run_matrix.py list                                   # the cases and their overrides
    python bench/run_matrix.py record --out /tmp/new.json [--repo PATH] [--cases a,b] [--jobs 2] [--keep DIR]
    python bench/run_matrix.py compare bench/run_matrix_baseline.json /tmp/new.json
    python bench/run_matrix.py check --baseline bench/run_matrix_baseline.json [--cases a,b] [--jobs 2]

``record`` runs the cases (the ones named in ``--cases`` plus what they need, e.g. ``cql_cartpole`` needs the
dataset ``data_cartpole`` which needs the run ``dqn_cartpole``) and writes the JSON manifest; ``--repo`` is a
checkout whose ``scripts/`` and ``cardio`` package are used (default: the checkout holding this script).
``compare BASE NEW`` prints one line per case: ``identical``, ``DIFFERS`` (the file and the columns or arrays),
``FAILED`` (the error's last line), and exits 1 when a case differs or fails that ran in BASE. A case that failed
in BASE and runs in NEW is reported ``now runs`` (there are no hashes to compare it to) and is fatal only with
``--strict``. ``check`` = ``record`` into a temporary file + ``compare``. The baseline
``bench/run_matrix_baseline.json`` was recorded at the commit named in its header (recreate it with
``git worktree add /tmp/cardio-base <commit>`` and ``record --repo /tmp/cardio-base``, then
``git worktree remove --force /tmp/cardio-base``); float results depend on the CPU, so compare on the CPU its
header names (tests/test_run_matrix.py skips elsewhere). At that commit (95d7d32) the four async cases fail
(``AttributeError: 'NoneType' object has no attribute 'send'``: AsyncVectorEnv's workers were shut down), and
the baseline records them as failed with that line.

The cases (:data:`CASES`; ``list`` prints their exact overrides):

* each online agent on its smallest env, zoo numbers shrunk: ``dqn_cartpole``, ``a2c_cartpole``,
  ``ppo_cartpole``, ``drqn_cartpolenovel`` (GRU + sequence buffer), ``sac_pendulum``, ``td3_pendulum``,
  ``ddpg_pendulum`` and the JAX twins ``dqn_jax_cartpole``, ``ppo_jax_cartpole``, ``sac_jax_pendulum``;
* replay and schedule options: ``dqn_nstep3`` (``buffer=nstep``), ``dqn_per`` (``buffer=prioritized``),
  ``dqn_memsave`` (``buffer.memory_saving=true``), ``dqn_normalize`` and ``ppo_normalize``
  (``runner.normalize=true``), ``ppo_gsde_pendulum`` and ``sac_gsde_pendulum`` (``agent.use_sde=true``),
  ``td3_episode`` (``runner.schedule.train_freq_unit=episode``);
* every ``env.vectorization`` x ``env.autoreset`` that ``make_env`` accepts, 4 env copies, for DQN and PPO:
  ``{dqn,ppo}_{sync,async}_{same,next}`` and ``{dqn,ppo}_native_next`` (``vector_entry_point``);
* offline: ``data_cartpole`` (a Minari dataset recorded by ``scripts/record.py`` from ``dqn_cartpole``: its agent
  with epsilon 0.3 and its replay buffer) and ``data_pendulum`` (``sac_pendulum``'s agent sampling), then
  ``cql_cartpole`` and ``iql_pendulum`` (``runner=offline``) and ``cql_finetune`` (``init_from=`` the CQL run,
  online, ``runner=off_policy``);
* ``dqn_jax_3seeds`` (``seeds=[0,1,2]``, one process) and ``dqn_breakout`` (Atari, memory saving on by ``auto``).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_REPO = HERE.parent
FORMAT = 1
"""Manifest layout version: compare refuses manifests of another one."""

# ----------------------------------------------------------------------------------------------- the cases

# Two evaluations of two episodes and several progress rows in every online case (eval_freq below total_steps;
# the runner always adds a final evaluation).
SMALL_EVAL = ("runner.eval_episodes=2",)


@dataclass(frozen=True)
class Case:
    """One command of the matrix.

    ``overrides`` may name another case's run dir as ``{run:<case>}``; ``needs`` lists the cases that must
    have finished first (their run dirs or datasets are read). ``recipe`` makes it a ``scripts/record.py``
    case: the recipe's YAML (``{run:<case>}`` allowed) is written to a file and recorded.
    """

    name: str
    overrides: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()
    recipe: str | None = None
    dataset_id: str | None = None
    note: str = ""


def _dqn(*extra: str, steps: int = 2000) -> tuple[str, ...]:
    # zoo dqn/CartPole-v1 (256x256, train_freq 256, batch 64, learning_starts 1000, 128 gradient steps): the first
    # update moved to 500 and 32 updates a phase, so that 2000 steps make 6 update phases in a few seconds
    return (
        "agent=dqn",
        "env=CartPole",
        f"runner.total_steps={steps}",
        "runner.schedule.learning_starts=500",
        "runner.schedule.gradient_steps=32",
        "runner.eval_freq=1000",
        "runner.log_interval=250",
        *SMALL_EVAL,
        *extra,
    )


def _ppo_cartpole(agent: str, *extra: str) -> tuple[str, ...]:
    # zoo ppo/CartPole-v1: 8 envs x 32 steps = 256 per rollout, 20 epochs, batch 256; 8 rollouts
    return (
        f"agent={agent}",
        "env=CartPole",
        "runner.total_steps=2048",
        "runner.eval_freq=1024",
        "runner.log_interval=256",
        *SMALL_EVAL,
        *extra,
    )


def _pendulum(agent: str, *extra: str) -> tuple[str, ...]:
    # zoo {sac,td3,ddpg}/Pendulum-v1 (td3/ddpg: learning_starts 10000), shrunk: 600 steps (three 200-step
    # episodes), updates from 200 on, batches of 64 instead of 256 (400 updates of the 256x256 or 400x300 nets)
    return (
        f"agent={agent}",
        "env=Pendulum",
        "runner.total_steps=600",
        "runner.schedule.learning_starts=200",
        "runner.schedule.batch_size=64",
        "runner.eval_freq=300",
        "runner.log_interval=100",
        *SMALL_EVAL,
        *extra,
    )


def _vector(agent: str, vectorization: str, autoreset: str) -> tuple[str, ...]:
    common = (
        "env.num_envs=4",
        f"env.vectorization={vectorization}",
        f"env.autoreset={autoreset}",
    )
    if agent == "dqn":
        # zoo train_freq 256 vector steps would be 1024 env steps with 4 copies: 32 (128 env steps)
        return _dqn(*common, "runner.schedule.train_freq=32")
    # 4 copies x 32 steps = 128 per rollout: batch 64 (the zoo's 256 is larger than a rollout); 8 rollouts
    return (
        "agent=ppo",
        "env=CartPole",
        *common,
        "agent.batch_size=64",
        "runner.total_steps=1024",
        "runner.eval_freq=512",
        "runner.log_interval=128",
        *SMALL_EVAL,
    )


def _vector_cases() -> list[Case]:
    combos = [
        ("sync", "same_step", "sync_same"),
        ("sync", "next_step", "sync_next"),
        ("async", "same_step", "async_same"),
        ("async", "next_step", "async_next"),
        ("vector_entry_point", "next_step", "native_next"),  # CartPole's own batched env autoresets next_step only
    ]
    return [
        Case(f"{agent}_{short}", _vector(agent, vectorization, autoreset))
        for agent in ("dqn", "ppo")
        for vectorization, autoreset, short in combos
    ]


CARTPOLE_DATASET = "cardio/CartPole-v1/bench-v0"
PENDULUM_DATASET = "cardio/Pendulum-v1/bench-v0"

# The two sources of configs/dataset/cartpole_mixed.yaml's kinds: an agent with epsilon-greedy noise and a saved
# replay buffer cut into episodes (both paths of scripts/record.py), from the dqn_cartpole run.
CARTPOLE_RECIPE = f"""\
dataset_id: {CARTPOLE_DATASET}
seed: 0
overwrite: true
algorithm_name: bench/run_matrix.py dqn_cartpole
description: 10 episodes of dqn_cartpole with epsilon 0.3, then its replay buffer.
sources:
  - run: "{{run:dqn_cartpole}}"
    kind: agent
    episodes: 10
    epsilon: 0.3
  - run: "{{run:dqn_cartpole}}"
    kind: buffer
"""

# configs/dataset/pendulum_medium.yaml shrunk: sac_pendulum sampling from its stochastic policy
PENDULUM_RECIPE = f"""\
dataset_id: {PENDULUM_DATASET}
seed: 0
overwrite: true
algorithm_name: bench/run_matrix.py sac_pendulum
description: 5 episodes of sac_pendulum sampling from its policy.
sources:
  - run: "{{run:sac_pendulum}}"
    kind: agent
    episodes: 5
    explore: true
"""

# The offline clock counts gradient updates: 4 runner steps of 100 updates, evaluations at 200 and 400
OFFLINE = (
    "runner.total_steps=400",
    "runner.schedule.gradient_steps=100",
    "runner.schedule.batch_size=64",
    "runner.eval_freq=200",
    "runner.log_interval=100",
    *SMALL_EVAL,
)

CASES: tuple[Case, ...] = (
    # --- every online agent on its smallest env
    Case("dqn_cartpole", _dqn()),
    Case(
        "a2c_cartpole",
        (
            # zoo a2c/CartPole-v1: 8 envs x 5 steps = 40 per rollout; 50 rollouts
            "agent=a2c",
            "env=CartPole",
            "runner.total_steps=2000",
            "runner.eval_freq=1000",
            "runner.log_interval=400",
            *SMALL_EVAL,
        ),
    ),
    Case("ppo_cartpole", _ppo_cartpole("ppo")),
    Case(
        "drqn_cartpolenovel",
        (
            # zoo drqn/CartPoleNoVel-v1: windows of 8 + 8 burn-in, train_freq 8; the first update at 500
            "agent=drqn",
            "env=CartPoleNoVel",
            "runner.total_steps=1500",
            "runner.schedule.learning_starts=500",
            "runner.eval_freq=750",
            "runner.log_interval=250",
            *SMALL_EVAL,
        ),
    ),
    Case("sac_pendulum", _pendulum("sac")),
    Case("td3_pendulum", _pendulum("td3")),
    Case("ddpg_pendulum", _pendulum("ddpg")),
    Case("dqn_jax_cartpole", ("agent=dqn_jax", *_dqn()[1:])),
    Case("ppo_jax_cartpole", _ppo_cartpole("ppo_jax")),
    Case("sac_jax_pendulum", _pendulum("sac_jax")),
    # --- replay, normalisation, gSDE, episode-counted phases
    Case("dqn_nstep3", _dqn("buffer=nstep", "buffer.n_step=3")),
    Case("dqn_per", _dqn("buffer=prioritized")),
    Case("dqn_memsave", _dqn("buffer.memory_saving=true")),
    Case("dqn_normalize", _dqn("runner.normalize=true")),
    Case("ppo_normalize", _ppo_cartpole("ppo", "runner.normalize=true")),
    Case(
        "ppo_gsde_pendulum",
        (
            # zoo ppo/Pendulum-v1 (use_sde, sde_sample_freq 4, 4 envs): rollouts of 4 x 128 instead of 4 x 1024
            "agent=ppo",
            "env=Pendulum",
            "agent.use_sde=true",
            "runner.schedule.n_steps=128",
            "runner.total_steps=2048",
            "runner.eval_freq=1024",
            "runner.log_interval=512",
            *SMALL_EVAL,
        ),
    ),
    Case("sac_gsde_pendulum", _pendulum("sac", "agent.use_sde=true", "agent.sde_sample_freq=8")),
    Case(
        "td3_episode",
        # rl-zoo's `train_freq: [1, episode]`: one phase per finished episode, one update per env step collected
        _pendulum(
            "td3",
            "runner.schedule.train_freq=1",
            "runner.schedule.train_freq_unit=episode",
            "runner.schedule.gradient_steps=-1",
        ),
    ),
    # --- every vectorization x autoreset, off-policy and on-policy
    *_vector_cases(),
    # --- offline: two datasets recorded from runs above, CQL, IQL, and an offline-to-online fine-tune
    Case("data_cartpole", needs=("dqn_cartpole",), recipe=CARTPOLE_RECIPE, dataset_id=CARTPOLE_DATASET),
    Case("data_pendulum", needs=("sac_pendulum",), recipe=PENDULUM_RECIPE, dataset_id=PENDULUM_DATASET),
    Case(
        "cql_cartpole",
        (
            "agent=cql",
            "env=CartPole",
            f"runner.schedule.dataset={CARTPOLE_DATASET}",
            "agent.target_update_interval=100",
            *OFFLINE,
        ),
        needs=("data_cartpole",),
    ),
    Case(
        "iql_pendulum",
        ("agent=iql", "env=Pendulum", f"runner.schedule.dataset={PENDULUM_DATASET}", *OFFLINE),
        needs=("data_pendulum",),
    ),
    Case(
        "cql_finetune",
        (
            # docs/offline.md's offline-to-online command: the CQL agent and its dataset buffer, online
            "agent=cql",
            "env=CartPole",
            "runner=off_policy",
            "init_from={run:cql_cartpole}",
            "runner.total_steps=1000",
            "runner.schedule.learning_starts=64",
            "runner.schedule.batch_size=64",
            "runner.eval_freq=500",
            "runner.log_interval=250",
            *SMALL_EVAL,
        ),
        needs=("cql_cartpole",),
    ),
    # --- several seeds in one process, and Atari
    Case(
        "dqn_jax_3seeds",
        ("agent=dqn_jax", "seeds=[0,1,2]", *_dqn(steps=1500)[1:]),
    ),
    Case(
        "dqn_breakout",
        (
            # zoo dqn/atari; tests/test_atari.py's cut of evaluation games at 2000 frames (an untrained greedy
            # agent may never press FIRE again after a lost life)
            "agent=dqn",
            "env=Breakout",
            "runner.total_steps=400",
            "runner.schedule.learning_starts=200",
            "buffer.capacity=1000",
            "+env.kwargs.max_num_frames_per_episode=2000",
            "runner.eval_freq=200",
            "runner.eval_episodes=1",
            "runner.log_interval=100",
        ),
    ),
)
CASES_BY_NAME = {c.name: c for c in CASES}

# ----------------------------------------------------------------------------------------------- hashing

WALL_CLOCK_COLUMNS = frozenset({"time/fps", "time/time_elapsed"})
"""progress.csv columns that depend on the wall clock; :data:`WALL_CLOCK_PATTERN` also catches new ones."""
WALL_CLOCK_PATTERN = re.compile(r"(^|/)(fps|sps|time_elapsed|elapsed|wall\w*|duration\w*|seconds\w*|\w*_time)$")
"""A future ``time/update_time`` or ``perf/sps`` column is dropped too (and named in the manifest's
``dropped``), whereas ``time/total_timesteps``, ``time/iterations`` and ``time/episodes`` are counts and stay."""


def is_wall_clock(column: str) -> bool:
    return column in WALL_CLOCK_COLUMNS or bool(WALL_CLOCK_PATTERN.search(column))


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def hash_array(array: np.ndarray) -> str:
    """dtype, shape and the C-order bytes: equal hashes mean equal arrays, bit for bit."""
    header = f"{array.dtype.str}|{array.shape}|".encode()
    if array.dtype.hasobject:  # np.load without pickles never gives one; kept so a hash never crashes
        return sha(header + repr(array.tolist()).encode())
    return sha(header + np.ascontiguousarray(array).tobytes())


def hash_npz(path: Path) -> dict[str, str]:
    with np.load(path, allow_pickle=False) as data:
        return {name: hash_array(data[name]) for name in sorted(data.files)}


def hash_csv(path: Path, skip: Iterable[str] = (), comment: str | None = None) -> dict[str, Any]:
    """Per-column hashes of a CSV's raw strings (as written: a changed float format counts), minus ``skip`` and
    wall-clock columns; ``comment`` lines (monitor.csv's ``#{"t_start": ...}``) are left out."""
    text = path.read_text()
    lines = [line for line in text.splitlines() if not (comment and line.startswith(comment))]
    rows = list(csv.reader(lines))
    if not rows:
        return {"columns": [], "rows": 0, "dropped": [], "hashes": {}}
    header, body = rows[0], rows[1:]
    skip = set(skip)
    dropped = [c for c in header if c in skip or is_wall_clock(c)]
    kept = [(i, c) for i, c in enumerate(header) if c not in dropped]
    hashes = {c: sha("\n".join(row[i] if i < len(row) else "<missing>" for row in body).encode()) for i, c in kept}
    return {"columns": [c for _, c in kept], "rows": len(body), "dropped": dropped, "hashes": hashes}


def hash_run_dir(run_dir: Path) -> dict[str, Any]:
    """The hashed files of one (single-seed) run dir; a missing file is recorded as missing."""
    files: dict[str, Any] = {}
    for name in ("weights.npz", "evaluations.npz"):
        path = run_dir / name
        files[name] = hash_npz(path) if path.is_file() else None
    progress = run_dir / "progress.csv"
    files["progress.csv"] = hash_csv(progress) if progress.is_file() else None
    monitor = run_dir / "monitor.csv"
    # monitor.csv's t column and its JSON header (t_start) are wall clock; r and l are the training episodes
    files["monitor.csv"] = hash_csv(monitor, skip={"t"}, comment="#") if monitor.is_file() else None
    return files


def hash_outputs(run_dir: Path) -> dict[str, Any]:
    """``{"": files}`` for a single run; ``{"seed_0": files, ...}`` plus the run dir's ``summary.csv`` for a
    multi-seed run."""
    seeds = sorted((p for p in run_dir.glob("seed_*") if p.is_dir()), key=lambda p: p.name)
    if not seeds:
        return {"": hash_run_dir(run_dir)}
    out: dict[str, Any] = {p.name: hash_run_dir(p) for p in seeds}
    summary = run_dir / "summary.csv"
    out[""] = {"summary.csv": hash_csv(summary) if summary.is_file() else None}
    return out


def hash_dataset(root: Path, dataset_id: str) -> dict[str, Any]:
    """A Minari dataset: sha256 of each of its files (h5py writes no timestamps by default, so the bytes repeat),
    and per field (``observations``, ``actions``, ``infos/...``) one sha256 over every episode's array in episode
    order, so that a comparison names the field that changed, not only the file."""
    folder = root / dataset_id
    if not folder.is_dir():
        return {"dataset": None}
    files = {str(p.relative_to(folder)): sha(p.read_bytes()) for p in sorted(folder.rglob("*")) if p.is_file()}
    out: dict[str, Any] = {"dataset": files}
    data = folder / "data" / "main_data.hdf5"
    if data.is_file():
        import h5py  # minari's own dependency: present wherever a dataset could be written

        fields: dict[str, Any] = {}
        with h5py.File(data, "r") as f:
            episodes = sorted(f, key=lambda k: int(k.split("_")[-1]) if k.split("_")[-1].isdigit() else -1)

            def visit(prefix: str, group: Any) -> None:
                for key in sorted(group):
                    item = group[key]
                    if isinstance(item, h5py.Dataset):
                        fields.setdefault(prefix + key, hashlib.sha256()).update(hash_array(item[()]).encode())
                    else:
                        visit(f"{prefix}{key}/", item)

            for episode in episodes:
                visit("", f[episode])
        out["dataset fields"] = {"episodes": str(len(episodes)), **{k: h.hexdigest() for k, h in fields.items()}}
    return out


# ----------------------------------------------------------------------------------------------- running


@dataclass
class Result:
    name: str
    status: str  # "ok" | "failed"
    seconds: float
    command: list[str]
    outputs: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status, "seconds": round(self.seconds, 1), "command": self.command}
        if self.error is not None:
            out["error"] = self.error
        if self.outputs:
            out["outputs"] = self.outputs
        return out


def child_env(repo: Path, work: Path) -> dict[str, str]:
    """The subprocesses' environment: this checkout's cardio first on the path, CPU only, one thread per
    library (2 cores shared with people; and no thread count can change a float reduction's order), and
    datasets under the work dir."""
    env = dict(os.environ)
    env.update(
        PYTHONPATH=os.pathsep.join([str(repo), *filter(None, [os.environ.get("PYTHONPATH")])]),
        PYTHONHASHSEED="0",
        CUDA_VISIBLE_DEVICES="",
        JAX_PLATFORMS="cpu",
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        OPENBLAS_NUM_THREADS="1",
        XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
        MINARI_DATASETS_PATH=str(work / "datasets"),
        HYDRA_FULL_ERROR="0",
        WANDB_MODE="disabled",
    )
    env.pop("CARDIO_TRACEBACK", None)  # the last stderr line must be cardio's one-line error
    return env


def expand(text: str, runs: Path) -> str:
    return re.sub(r"\{run:([a-z0-9_]+)\}", lambda m: str(runs / m.group(1)), text)


HYDRA_HINT = "Set the environment variable HYDRA_FULL_ERROR=1"
"""Hydra's closing hint after a traceback: not the error."""


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith(HYDRA_HINT)]
    return lines[-1] if lines else "(no output)"


def run_case(case: Case, repo: Path, work: Path, timeout: float) -> Result:
    runs = work / "runs"
    run_dir = runs / case.name
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = child_env(repo, work)
    if case.recipe is not None:
        recipe = work / "recipes" / f"{case.name}.yaml"
        recipe.parent.mkdir(parents=True, exist_ok=True)
        recipe.write_text(expand(case.recipe, runs))
        command = [sys.executable, str(repo / "scripts" / "record.py"), f"recipe={recipe}"]
        shown = ["scripts/record.py", f"recipe=<{case.name}.yaml>"]
    else:
        overrides = [expand(o, runs) for o in case.overrides]
        fixed = [f"hydra.run.dir={run_dir}", "logger=csv", "device=cpu", "torch_threads=1"]
        command = [sys.executable, str(repo / "scripts" / "train.py"), *fixed, *overrides]
        shown = ["scripts/train.py", *case.overrides]
    started = time.perf_counter()
    try:
        done = subprocess.run(
            command, cwd=repo, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired as e:
        seconds = time.perf_counter() - started
        # TimeoutExpired keeps bytes even under text=True
        partial = [x.decode(errors="replace") if isinstance(x, bytes) else (x or "") for x in (e.stdout, e.stderr)]
        (logs / f"{case.name}.log").write_text("\n--- stderr\n".join(partial))
        return Result(case.name, "failed", seconds, shown, error=f"timed out after {timeout:.0f} s")
    seconds = time.perf_counter() - started
    (logs / f"{case.name}.log").write_text(f"$ {' '.join(command)}\n{done.stdout}\n--- stderr\n{done.stderr}")
    if done.returncode != 0:
        error = f"exit {done.returncode}: {last_line(done.stderr or done.stdout)}"
        return Result(case.name, "failed", seconds, shown, error=error)
    if case.dataset_id is not None:
        outputs = {"": hash_dataset(work / "datasets", case.dataset_id)}
    else:
        outputs = hash_outputs(run_dir)
    return Result(case.name, "ok", seconds, shown, outputs=outputs)


def with_needs(names: Sequence[str]) -> list[str]:
    """The named cases and, first, every case they need, in matrix order."""
    wanted: set[str] = set()

    def add(name: str) -> None:
        if name not in CASES_BY_NAME:
            raise SystemExit(f"unknown case {name!r}; cases: {', '.join(CASES_BY_NAME)}")
        if name not in wanted:
            wanted.add(name)
            for need in CASES_BY_NAME[name].needs:
                add(need)

    for name in names:
        add(name)
    return [c.name for c in CASES if c.name in wanted]


def run_cases(names: Sequence[str], repo: Path, work: Path, jobs: int, timeout: float) -> dict[str, Result]:
    """Run the cases on ``jobs`` worker threads (each waits on one subprocess), a case once all it needs is
    done; a case whose need failed fails without running."""
    results: dict[str, Result] = {}
    pending = list(names)
    running: dict[Future[Result], str] = {}
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        while pending or running:
            for name in list(pending):
                case = CASES_BY_NAME[name]
                broken = [n for n in case.needs if n in results and results[n].status != "ok"]
                if broken:
                    pending.remove(name)
                    results[name] = Result(name, "failed", 0.0, [], error=f"not run: needs {broken[0]}, which failed")
                    print(f"  {name}: FAILED ({results[name].error})", flush=True)
                elif len(running) < jobs and all(n in results for n in case.needs):
                    pending.remove(name)
                    running[pool.submit(run_case, case, repo, work, timeout)] = name
            if not running:
                continue
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                result = future.result()
                results[running.pop(future)] = result
                said = "ok" if result.status == "ok" else f"FAILED ({result.error})"
                print(f"  {result.name}: {said} in {result.seconds:.0f} s", flush=True)
    return {n: results[n] for n in names}


# ----------------------------------------------------------------------------------------------- provenance


def cpu_info() -> dict[str, str]:
    """What float results may depend on: the model and the instruction sets (oneDNN and XLA pick kernels by
    them). ``key`` is what tests/test_run_matrix.py compares."""
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True, env={"LC_ALL": "C"}).stdout
    except (OSError, subprocess.CalledProcessError):
        text = ""
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    get = {k.strip(): v.strip() for k, v in fields.items()}.get
    flags = sorted((get("Flags") or "").split())
    info = {
        "model_name": get("Model name") or platform.processor() or "unknown",
        "family": get("CPU family") or "",
        "model": get("Model") or "",
        "stepping": get("Stepping") or "",
        "flags_sha256": sha(" ".join(flags).encode())[:16],
    }
    info["key"] = f"{info['model_name']} (family {info['family']} model {info['model']}) flags {info['flags_sha256']}"
    return info


def probe(repo: Path, work: Path) -> dict[str, Any]:
    """Versions and where ``cardio`` is imported from, in the children's own environment; refuses a run whose
    ``cardio`` is not the ``--repo`` one (the venv's editable install points at one checkout only)."""
    code = (
        "import json, sys, cardio, numpy, gymnasium, torch\n"
        "try:\n import jax; jv = jax.__version__\nexcept ImportError:\n jv = None\n"
        "from importlib.metadata import version, PackageNotFoundError\n"
        "def v(name):\n try:\n  return version(name)\n except PackageNotFoundError:\n  return None\n"
        "print(json.dumps({'cardio_file': cardio.__file__, 'python': sys.version.split()[0],"
        " 'numpy': numpy.__version__, 'gymnasium': gymnasium.__version__, 'torch': torch.__version__, 'jax': jv,"
        " 'jaxlib': v('jaxlib'), 'minari': v('minari'), 'h5py': v('h5py'), 'ale-py': v('ale-py'),"
        " 'hydra-core': v('hydra-core')}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=repo, env=child_env(repo, work), capture_output=True, text=True, check=True
    )
    info = json.loads(done.stdout)
    where = Path(info.pop("cardio_file")).resolve()
    if repo.resolve() not in where.parents:
        raise SystemExit(f"cardio is imported from {where}, not from --repo {repo}: check PYTHONPATH/editable installs")
    info["cardio_imported_from"] = str(where.parent)
    return info


def git_commit(repo: Path) -> dict[str, Any]:
    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "cardio", "scripts", "configs")
    return {
        "commit": git("rev-parse", "HEAD") or None,
        "dirty": bool(dirty),
        "subject": git("log", "-1", "--format=%s")[:120],
    }


# ----------------------------------------------------------------------------------------------- commands


def record(out: Path, repo: Path, names: Sequence[str], jobs: int, timeout: float, keep: Path | None) -> dict[str, Any]:
    repo = repo.resolve()
    names = with_needs(names)
    with tempfile.TemporaryDirectory(prefix="run_matrix_") as tmp:
        work = (keep or Path(tmp)).resolve()
        work.mkdir(parents=True, exist_ok=True)
        if (work / "runs").exists() and any((work / "runs").iterdir()):
            raise SystemExit(f"{work}/runs is not empty: pass a fresh --keep dir (run dirs would get _1 suffixes)")
        versions = probe(repo, work)
        print(
            f"recording {len(names)} cases from {repo} (cardio from {versions['cardio_imported_from']}), "
            f"{jobs} jobs, work dir {work}",
            flush=True,
        )
        started = time.perf_counter()
        results = run_cases(names, repo, work, jobs, timeout)
        seconds = time.perf_counter() - started
        # CPU time of every child (the wall clock stretches on a shared machine; this does much less)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
    manifest = {
        "format": FORMAT,
        "repo": str(repo),
        **git_commit(repo),
        "recorded": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": round(seconds, 1),
        "cpu_seconds": round(children.ru_utime + children.ru_stime, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "jobs": jobs,
        "versions": versions,
        "platform": platform.platform(),
        "cpu": cpu_info(),
        "cases": {n: r.to_json() for n, r in results.items()},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(manifest, indent=1, sort_keys=False) + "\n")
    failed = [n for n, r in results.items() if r.status != "ok"]
    print(
        f"wrote {out}: {len(results)} cases in {seconds:.0f} s ({manifest['cpu_seconds']:.0f} s of CPU), "
        f"failed: {', '.join(failed) or 'none'}"
    )
    return manifest


def diff_mapping(a: dict[str, Any] | None, b: dict[str, Any] | None) -> list[str]:
    """Names whose hashes differ, or that exist on one side only."""
    a, b = a or {}, b or {}
    out = [k for k in a if k in b and a[k] != b[k]]
    out += [f"{k} (only in BASE)" for k in a if k not in b]
    out += [f"{k} (only in NEW)" for k in b if k not in a]
    return out


def diff_file(name: str, a: Any, b: Any) -> list[str]:
    if a == b:
        return []
    if a is None or b is None:
        return [f"{name} {'missing in BASE' if a is None else 'missing in NEW'}"]
    if name.endswith(".csv"):
        parts = [f"column {c}" for c in diff_mapping(a["hashes"], b["hashes"])]
        if a["rows"] != b["rows"]:
            parts.insert(0, f"rows {a['rows']} -> {b['rows']}")
        if not parts and a["columns"] != b["columns"]:
            parts.append("column order")
        if a.get("dropped") != b.get("dropped"):
            parts.append(f"wall-clock columns dropped {a.get('dropped')} -> {b.get('dropped')}")
        return [f"{name}: {', '.join(parts)}"]
    if name.startswith("dataset"):
        return [f"{name}: {', '.join(diff_mapping(a, b))}"]
    return [f"{name}: arrays {', '.join(diff_mapping(a, b))}"]


def diff_outputs(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    out = []
    for sub in sorted(set(a) | set(b)):
        where = f"{sub}/" if sub else ""
        if sub not in a or sub not in b:
            out.append(f"{where} only in {'NEW' if sub not in a else 'BASE'}")
            continue
        for name in [*a[sub], *(n for n in b[sub] if n not in a[sub])]:
            out += [where + line for line in diff_file(name, a[sub].get(name), b[sub].get(name))]
    return out


def compare(base: dict[str, Any], new: dict[str, Any], strict: bool = False) -> tuple[int, list[str]]:
    """(exit code, report lines). Fatal: a case that differs, or that ran in BASE and fails in NEW (or fails
    otherwise than it did); ``strict`` also: a case that failed in BASE and runs in NEW."""
    lines: list[str] = []
    for manifest, label in ((base, "BASE"), (new, "NEW")):
        if manifest.get("format") != FORMAT:
            return 2, [f"{label} has manifest format {manifest.get('format')}, expected {FORMAT}"]
    for key in ("cpu", "versions"):
        b, n = base.get(key, {}), new.get(key, {})
        changed = [k for k in b if k not in ("cardio_imported_from",) and b.get(k) != n.get(k)]
        if changed:
            lines.append(f"warning: {key} differ ({', '.join(f'{k}: {b.get(k)} -> {n.get(k)}' for k in changed)})")
    fatal = 0
    width = max((len(n) for n in new["cases"]), default=0)
    for name, nc in new["cases"].items():
        bc = base["cases"].get(name)
        if bc is None:
            lines.append(f"{name:<{width}}  new case (not in BASE)")
            continue
        if bc["status"] == "ok" and nc["status"] == "ok":
            diffs = diff_outputs(bc.get("outputs", {}), nc.get("outputs", {}))
            if diffs:
                fatal += 1
                lines.append(f"{name:<{width}}  DIFFERS: " + "; ".join(diffs))
            else:
                lines.append(f"{name:<{width}}  identical")
        elif bc["status"] == "ok":
            fatal += 1
            lines.append(f"{name:<{width}}  FAILED: {nc.get('error')}")
        elif nc["status"] == "ok":
            fatal += strict
            lines.append(f"{name:<{width}}  now runs (failed in BASE: {bc.get('error')}); no BASE hashes to compare")
        elif bc.get("error") == nc.get("error"):
            lines.append(f"{name:<{width}}  failed, as in BASE: {nc.get('error')}")
        else:
            fatal += 1
            lines.append(f"{name:<{width}}  FAILED: {nc.get('error')} (BASE failed with: {bc.get('error')})")
    missing = [n for n in base["cases"] if n not in new["cases"]]
    if missing:
        lines.append(f"not run in NEW: {', '.join(missing)}")
    lines.append(f"{fatal} case(s) differ or fail" if fatal else "no differences")
    return int(fatal > 0), lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="print the cases and their overrides")

    def running_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--repo", type=Path, default=DEFAULT_REPO, help="checkout whose scripts/ and cardio run")
        p.add_argument("--cases", default="", help="comma-separated case names (default: all)")
        p.add_argument("--jobs", type=int, default=2, help="cases run at once (default 2)")
        p.add_argument("--timeout", type=float, default=900.0, help="seconds per case before it counts as failed")
        p.add_argument("--keep", type=Path, default=None, help="work dir to keep (run dirs, logs, datasets)")

    rec = sub.add_parser("record", help="run the cases and write a manifest")
    rec.add_argument("--out", type=Path, required=True)
    running_options(rec)
    cmp = sub.add_parser("compare", help="compare two manifests; exit 1 when a case differs")
    cmp.add_argument("base", type=Path)
    cmp.add_argument("new", type=Path)
    cmp.add_argument("--strict", action="store_true", help="a case failing in BASE that runs in NEW is fatal too")
    chk = sub.add_parser("check", help="record into a temporary file and compare with a baseline")
    chk.add_argument("--baseline", type=Path, required=True)
    chk.add_argument("--out", type=Path, default=None, help="keep the new manifest here")
    chk.add_argument("--strict", action="store_true")
    running_options(chk)
    args = parser.parse_args(argv)

    if args.cmd == "list":
        for case in CASES:
            what = f"scripts/record.py (dataset {case.dataset_id})" if case.recipe else " ".join(case.overrides)
            needs = f"  [needs {', '.join(case.needs)}]" if case.needs else ""
            print(f"{case.name:<20} {what}{needs}")
        return 0
    if args.cmd == "compare":
        code, lines = compare(json.loads(args.base.read_text()), json.loads(args.new.read_text()), args.strict)
        print("\n".join(lines))
        return code
    names = [n for n in args.cases.split(",") if n] or [c.name for c in CASES]
    if not 1 <= args.jobs <= 2:
        print("note: the matrix was sized for --jobs 2 on 2 cores", file=sys.stderr)
    if args.cmd == "record":
        record(args.out, args.repo, names, args.jobs, args.timeout, args.keep)
        return 0
    baseline = json.loads(args.baseline.read_text())
    with tempfile.TemporaryDirectory(prefix="run_matrix_check_") as tmp:
        out = args.out or Path(tmp) / "new.json"
        new = record(out, args.repo, names, args.jobs, args.timeout, args.keep)
    code, lines = compare(baseline, new, args.strict)
    print("\n".join(lines))
    return code


if __name__ == "__main__":
    sys.exit(main())

"""Offline RL on datasets cardio records itself: ``python bench/offline.py`` (resumable; docs/offline.md).

1. Source runs (rl-zoo numbers, ``scripts/train.py``): a converged DQN on CartPole-v1 (5e4 env steps), an early
   DQN of the same recipe (4096 env steps), and a medium SAC on Pendulum-v1 (2600 of the zoo's 2e4 env steps).
2. Datasets (``scripts/record.py``, recipes ``configs/dataset/{cartpole_mixed,pendulum_medium}.yaml``).
3. Offline runs (``scripts/train.py agent=<algo> runner=offline``), ``--seeds`` seeds each, ``--updates`` gradient
   steps, evaluated (10 deterministic episodes) every tenth of the run, rounded up to the runner step of
   ``runner.schedule.gradient_steps=1000`` updates (a 5e3-update run is evaluated 5 times).
4. A table (final evaluation and the mean of the last three, mean and std over seeds, against the dataset's own
   average return) and learning curves as PNGs in ``docs/curves/``.

Every finished run is kept (``final.json`` in its run dir), so a second call only runs what is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable

SOURCES = {
    "dqn_cartpole": ["experiment=dqn_cartpole"],
    "dqn_cartpole_early": ["experiment=dqn_cartpole", "runner.total_steps=4096"],
    "sac_pendulum_medium": ["experiment=sac_pendulum", "runner.total_steps=2600"],
}
DATASETS = {
    "cartpole_mixed": ("cardio/CartPole-v1/mixed-v0", "CartPole", ["dqn_cartpole", "dqn_cartpole_early"]),
    "pendulum_medium": ("cardio/Pendulum-v1/medium-v0", "Pendulum", ["sac_pendulum_medium"]),
}
# Budget on a shared 2-core CPU: the papers' networks are 256x256; these are smaller (docs/offline.md says so).
RUNS = {
    "cartpole_mixed": {
        "BC": ["agent=bc", "agent.hidden_sizes=[64,64]"],
        "CQL": ["agent=cql", "agent.target_update_interval=1000"],
    },
    "pendulum_medium": {
        "BC": ["agent=bc", "agent.hidden_sizes=[128,128]"],
        "TD3+BC": ["agent=td3_bc", "agent.hidden_sizes=[128,128]"],
        "IQL": ["agent=iql", "agent.hidden_sizes=[128,128]"],
    },
}


def run(cmd: list[str], log: Path) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as f:
        subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, check=True, env=os.environ.copy())


def ensure_sources(src: Path, recipes: list[str]) -> None:
    """Train the source runs the datasets of ``recipes`` need (those not trained yet)."""
    for name, overrides in SOURCES.items():
        needed = any(name in DATASETS[recipe][2] for recipe in recipes)
        if needed and not (src / name / "last.ckpt").is_file():
            print(f"training source {name}")
            cmd = [PY, "scripts/train.py", *overrides, "seed=0", "logger=csv", f"hydra.run.dir={src / name}"]
            run(cmd, src / f"{name}.log")


def ensure_dataset(recipe: str, src: Path) -> None:
    from cardio.datasets.minari import datasets_path

    dataset_id, _, sources = DATASETS[recipe]
    if (datasets_path() / dataset_id).exists():
        return
    print(f"recording {dataset_id}")
    paths = [f"sources.{i}.run={src / name}" for i, name in enumerate(sources)]
    run([PY, "scripts/record.py", f"recipe={recipe}", *paths], src / f"record_{recipe}.log")


def offline_run(recipe: str, label: str, seed: int, updates: int, out: Path) -> Path:
    dataset_id, env, _ = DATASETS[recipe]
    run_dir = out / recipe / label.replace("+", "_") / f"seed{seed}"
    if not (run_dir / "final.json").is_file():
        cmd = [
            PY,
            "scripts/train.py",
            *RUNS[recipe][label],
            f"env={env}",
            f"runner.schedule.dataset={dataset_id}",
            f"seed={seed}",
            f"runner.total_steps={updates}",
            f"runner.eval_freq={updates // 10}",
            f"runner.log_interval={updates // 10}",
            "logger=csv",
            f"hydra.run.dir={run_dir}",
        ]
        run(cmd, run_dir.parent / f"seed{seed}.log")
    return run_dir


def eval_curve(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """(updates, eval/mean_reward) from a run's metrics.jsonl."""
    steps, values = [], []
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        if "eval/mean_reward" in row:
            steps.append(row["step"])
            values.append(row["eval/mean_reward"])
    return np.array(steps), np.array(values)


def plot(recipe: str, curves: dict[str, list[tuple[np.ndarray, np.ndarray]]], dataset_mean: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for label, runs in curves.items():
        steps = runs[0][0]
        values = np.stack([v for _, v in runs])
        mean, std = values.mean(0), values.std(0)
        ax.plot(steps, mean, label=f"{label} ({len(runs)} seeds)")
        ax.fill_between(steps, mean - std, mean + std, alpha=0.2)
    ax.axhline(dataset_mean, color="k", ls="--", label=f"dataset average ({dataset_mean:.0f})")
    ax.set_xlabel("gradient steps")
    ax.set_ylabel("eval return (10 episodes)")
    ax.set_title(DATASETS[recipe][0])
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--algos", nargs="+", default=None, help="only these algorithms (default: all)")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--updates", type=int, default=10_000, help="gradient steps per offline run")
    parser.add_argument("--workers", type=int, default=2, help="offline runs at once")
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "offline")
    parser.add_argument("--curves", type=Path, default=ROOT / "docs" / "curves")
    args = parser.parse_args()
    os.environ.setdefault("MINARI_DATASETS_PATH", str(args.out / "datasets"))
    sys.path.insert(0, str(ROOT))
    from cardio.datasets.minari import load_dataset

    ensure_sources(args.out, args.datasets)
    for recipe in args.datasets:
        ensure_dataset(recipe, args.out)
    # seed-major, so an interrupted bench has every algorithm on its first seeds
    jobs = [
        (r, label, s)
        for r in args.datasets
        for s in range(args.seeds)
        for label in RUNS[r]
        if args.algos is None or label in args.algos
    ]
    with ThreadPoolExecutor(args.workers) as pool:
        # one folder per budget, so a run at another --updates never counts as finished
        bench_dir = args.out / "bench" / f"updates{args.updates}"
        dirs = list(pool.map(lambda j: offline_run(*j, args.updates, bench_dir), jobs))
    results: dict[str, dict[str, object]] = {}
    for recipe in args.datasets:
        data = load_dataset(DATASETS[recipe][0])
        curves: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
        for (r, label, _), run_dir in zip(jobs, dirs, strict=True):
            if r == recipe:
                curves.setdefault(label, []).append(eval_curve(run_dir))
        plot(recipe, curves, data.mean_return, args.curves / f"offline_{recipe}.png")
        finals = {label: [float(v[-1]) for _, v in runs] for label, runs in curves.items()}
        # Pendulum's returns swing with the start state: the last three evaluations (30 episodes) are steadier
        last3 = {label: [float(np.mean(v[-3:])) for _, v in runs] for label, runs in curves.items()}
        results[recipe] = {
            "dataset": DATASETS[recipe][0],
            "episodes": len(data.episode_returns),
            "transitions": len(data.buffer),
            "dataset_mean_return": data.mean_return,
            "final": finals,
            "last3": last3,
        }
        print(
            f"\n{DATASETS[recipe][0]}: {len(data.episode_returns)} episodes, {len(data.buffer)} transitions, "
            f"dataset average return {data.mean_return:.1f}"
        )
        print("| algorithm | final eval, mean +- std over seeds | per seed | last 3 evals, mean +- std |")
        print("|---|---|---|---|")
        for label, values in finals.items():
            per_seed = ", ".join(f"{v:.0f}" for v in values)
            steady = last3[label]
            print(
                f"| {label} | {np.mean(values):.1f} +- {np.std(values):.1f} | {per_seed} | "
                f"{np.mean(steady):.1f} +- {np.std(steady):.1f} |"
            )
    (args.out / "bench_results.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()

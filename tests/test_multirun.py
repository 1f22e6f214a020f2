"""Hydra multirun: one run dir per job, final.json per job, summary.csv (mean/std over seeds) per multirun,
with the basic launcher and the shipped joblib and submitit (local executor) launcher configs."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cardio.sweep.summary import summarise
from tests.helpers import pythonpath

REPO = Path(__file__).resolve().parents[1]
TINY = [
    "runner.total_steps=256",
    "runner.eval_freq=0",
    "runner.eval_episodes=2",
    "runner.log_interval=128",
    "runner.schedule.learning_starts=64",
    "runner.schedule.train_freq=4",
    "runner.schedule.gradient_steps=1",
    "runner.schedule.batch_size=32",
    "agent.hidden_sizes=[16,16]",
    "logger=csv",
]

# job dir -> (overrides, value); two configs x two seeds, a failed job, shared overrides on every job
JOBS = {
    "0_lr=1": (["seed=0", "agent.lr=1", "env=CartPole"], 10.0),
    "1_lr=2": (["seed=0", "agent.lr=2", "env=CartPole"], 30.0),
    "2_lr=1": (["seed=1", "agent.lr=1", "env=CartPole"], 20.0),
    "3_lr=2": (["seed=1", "agent.lr=2", "env=CartPole"], None),
}


def write_jobs(sweep_dir: Path) -> None:
    for name, (overrides, value) in JOBS.items():
        (sweep_dir / name).mkdir(parents=True)
        status = "COMPLETED" if value is not None else "FAILED"
        (sweep_dir / name / "final.json").write_text(
            json.dumps({"overrides": overrides, "status": status, "value": value})
        )


def test_summary_averages_over_seeds_per_config(tmp_path: Path) -> None:
    write_jobs(tmp_path)
    rows = {r["config"]: r for r in summarise(tmp_path, exclude_keys=["seed"])}
    assert list(rows) == ["agent.lr=1", "agent.lr=2"]  # env=CartPole is on every job: not part of the label
    assert (rows["agent.lr=1"]["n"], rows["agent.lr=1"]["mean"], rows["agent.lr=1"]["std"]) == (2, 15.0, 5.0)
    assert (rows["agent.lr=2"]["n"], rows["agent.lr=2"]["mean"], rows["agent.lr=2"]["failed"]) == (1, 30.0, 1)
    # negative control: with the seed kept in the key every job is its own config, nothing is averaged
    assert len(summarise(tmp_path, exclude_keys=[])) == 4


def run_multirun(tmp_path: Path, *extra: str) -> Path:
    sweep_dir = tmp_path / "multirun"
    cmd = [sys.executable, "scripts/train.py", "-m", "seed=0,1", "agent.lr=1e-3,3e-4", *TINY, *extra]
    cmd.append(f"hydra.sweep.dir={sweep_dir}")
    env = {**os.environ, "PYTHONPATH": pythonpath(REPO), "WANDB_MODE": "disabled"}
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "multirun summary" in done.stdout
    return sweep_dir


def check_summary(sweep_dir: Path) -> None:
    jobs = sorted(p.name for p in sweep_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert len(jobs) == 4 and all((sweep_dir / j / "progress.csv").exists() for j in jobs)  # one dir per job
    rows = list(csv.DictReader((sweep_dir / "summary.csv").open()))
    assert [r["config"] for r in rows] == ["agent.lr=0.001", "agent.lr=0.0003"]
    for row in rows:
        values = [float(v) for v in row["values"].split()]
        assert int(row["n"]) == 2 and float(row["mean"]) == pytest.approx(sum(values) / 2)
        assert int(row["failed"]) == 0


def test_multirun_over_seeds_writes_the_summary(tmp_path: Path) -> None:
    check_summary(run_multirun(tmp_path))


@pytest.mark.slow
def test_submitit_launcher_config_runs_jobs_with_the_local_executor(tmp_path: Path) -> None:
    sweep_dir = run_multirun(tmp_path, "hydra/launcher=slurm_local")
    check_summary(sweep_dir)
    assert (sweep_dir / ".submitit").is_dir()  # the jobs really went through submitit


@pytest.mark.slow
def test_joblib_launcher_config_runs_jobs_as_processes(tmp_path: Path) -> None:
    check_summary(run_multirun(tmp_path, "hydra/launcher=processes"))

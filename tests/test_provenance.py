"""Every run dir records where its figures came from (``provenance.json``, ``diff.patch``), and resuming or
evaluating it under other code or versions says so in one line. Run dirs are written by the real commands."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import gymnasium
import numpy as np
import torch

from cardio import provenance

ROOT = Path(__file__).resolve().parents[1]


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout


def test_run_dir_records_commit_diff_command_and_versions_and_resume_notices_changes(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    train = [sys.executable, str(ROOT / "scripts" / "train.py"), f"hydra.run.dir={run_dir}", "logger=csv"]
    train += ["runner.schedule.learning_starts=64", "runner.eval_episodes=2", "runner.total_steps=128"]
    first = subprocess.run(train, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    assert f"run dir: {run_dir}" in first.stdout

    record = json.loads((run_dir / "provenance.json").read_text())
    assert record["git"]["commit"] == git("rev-parse", "HEAD").strip()
    diff = git("diff", "HEAD", "--no-color", "--no-ext-diff")
    assert record["git"]["dirty"] == bool(diff)
    assert (run_dir / "diff.patch").read_text() == diff if diff else not (run_dir / "diff.patch").exists()
    assert record["command"][1:] == train[1:] and record["cwd"] == str(tmp_path)
    assert record["packages"]["torch"] == torch.__version__ and record["packages"]["numpy"] == np.__version__
    assert record["packages"]["gymnasium"] == gymnasium.__version__ and "hydra-core" in record["packages"]
    assert "jax" not in record["packages"]  # recorded only when the run imported it
    assert record["python"] == sys.version.split()[0] and record["device"] == "cpu" and record["platform"]

    # Resume under "other" versions: the run's record says torch 0.0.1 and another commit.
    record["packages"]["torch"] = "0.0.1"
    record["git"]["commit"] = "0" * 40
    (run_dir / "provenance.json").write_text(json.dumps(record))
    resumed = subprocess.run(
        [*train[:-1], "runner.total_steps=192", f"resume={run_dir}"], cwd=tmp_path, capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    notes = [line for line in resumed.stdout.splitlines() if "under different code or versions" in line]
    assert len(notes) == 1 and f"torch 0.0.1 -> {torch.__version__}" in notes[0] and "cardio commit 0000" in notes[0]
    assert len(json.loads((run_dir / "provenance.json").read_text())["resumes"]) == 1

    evaluate = [sys.executable, str(ROOT / "scripts" / "evaluate.py"), f"run={run_dir}", "episodes=1"]
    evaluate += [f"checkpoint={run_dir / 'last.ckpt'}", "trust_pickle=true"]
    evaluated = subprocess.run(evaluate, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert evaluated.returncode == 0 and "evaluating" in evaluated.stdout and "torch 0.0.1" in evaluated.stdout


def test_same_code_and_versions_give_no_note(tmp_path: Path) -> None:
    provenance.write(tmp_path, provenance.collect())
    assert provenance.check(tmp_path, provenance.collect(), "resuming") is None  # negative control
    assert provenance.check(tmp_path / "no-record", provenance.collect(), "resuming") is None

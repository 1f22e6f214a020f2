"""Checkpoints written before the refactor into one collection path still load, and continue as that code did.

``tests/fixtures/format2/<case>/`` is a run dir written by cardio at commit 95d7d32 (the last commit before the
structure of issue 22), checkpoint format 2: DQN on CartPole (replay) and PPO on two CartPole copies with
normalisation (a rollout buffer and normaliser statistics), 640 env steps each. ``expected_progress.csv`` and
``expected_evaluations.npz`` are what that same code wrote when the run dir was resumed to 960 env steps. Here a
copy of the run dir is resumed the way a user does it (``scripts/train.py resume=<dir>``) by today's code."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "format2"
TIME_COLUMNS = ("time/fps", "time/time_elapsed")  # wall-clock dependent


def rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return [{k: v for k, v in row.items() if k not in TIME_COLUMNS} for row in csv.DictReader(f)]


@pytest.mark.parametrize("case", ["dqn", "ppo"])
def test_a_format_2_run_dir_resumes_as_the_code_that_wrote_it_resumed_it(tmp_path: Path, case: str) -> None:
    run_dir = tmp_path / case
    shutil.copytree(FIXTURES / case, run_dir, ignore=shutil.ignore_patterns("expected_*"))
    proc = subprocess.run(
        [sys.executable, "scripts/train.py", f"resume={run_dir}", "runner.total_steps=960"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"resuming from {run_dir}" in proc.stdout
    got, want = rows(run_dir / "progress.csv"), rows(FIXTURES / case / "expected_progress.csv")
    assert [r["time/total_timesteps"] for r in got] == [r["time/total_timesteps"] for r in want]
    assert max(float(r["time/total_timesteps"]) for r in got if r["time/total_timesteps"]) == 960
    for g, w in zip(got, want, strict=True):
        assert g.keys() == w.keys()
        for key in g:
            assert bool(g[key]) == bool(w[key]), key  # a metric logged in one row is logged in the other
            if g[key] != w[key]:  # the same code path; the last digit may follow the CPU's float kernels
                assert float(g[key]) == pytest.approx(float(w[key]), rel=1e-5, abs=1e-7), key
    with np.load(run_dir / "evaluations.npz") as a, np.load(FIXTURES / case / "expected_evaluations.npz") as b:
        assert sorted(a.files) == sorted(b.files)
        for key in a.files:
            np.testing.assert_allclose(a[key], b[key], rtol=1e-5, err_msg=key)

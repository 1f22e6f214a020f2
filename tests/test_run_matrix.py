"""The refactor safety net, bench/run_matrix.py: the fixed run matrix must reproduce the committed baseline bit for
bit (slow: the whole matrix, several minutes on 2 cores), and its comparison must name what differs (fast)."""

from __future__ import annotations

import copy
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "run_matrix.py"
BASELINE = ROOT / "bench" / "run_matrix_baseline.json"


def load_matrix() -> ModuleType:
    """bench/ is no package: the script is loaded from its file."""
    spec = importlib.util.spec_from_file_location("run_matrix", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("run_matrix", module)  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


rm = load_matrix()


def said(lines: list[str]) -> list[str]:
    """The report's lines with the name column's padding squeezed."""
    return [" ".join(line.split()) for line in lines]


def tiny_manifest() -> dict[str, Any]:
    files = {
        "weights.npz": {"q/w": "a1", "q/b": "a2"},
        "evaluations.npz": {"results": "e1", "timesteps": "e2"},
        "progress.csv": {
            "columns": ["step", "train/loss"],
            "rows": 3,
            "dropped": ["time/fps"],
            "hashes": {"step": "s", "train/loss": "l"},
        },
        "monitor.csv": None,
    }
    return {
        "format": rm.FORMAT,
        "cpu": {"key": "cpu"},
        "versions": {"torch": "1"},
        "cases": {
            "dqn": {"status": "ok", "outputs": {"": files}},
            "multi": {"status": "ok", "outputs": {"seed_0": copy.deepcopy(files), "": {"summary.csv": None}}},
            "async": {"status": "failed", "error": "exit 1: AttributeError: boom"},
        },
    }


def test_identical_manifests_compare_equal() -> None:
    code, lines = rm.compare(tiny_manifest(), tiny_manifest())
    assert code == 0, lines
    lines = said(lines)
    assert lines[0] == "dqn identical" and lines[1] == "multi identical"
    assert "failed, as in BASE: exit 1: AttributeError: boom" in lines[2]
    assert lines[-1] == "no differences"


def test_a_differing_column_or_array_is_named_and_exits_1(tmp_path: Path) -> None:
    new = tiny_manifest()
    new["cases"]["dqn"]["outputs"][""]["progress.csv"]["hashes"]["train/loss"] = "other"
    new["cases"]["multi"]["outputs"]["seed_0"]["weights.npz"]["q/b"] = "other"
    code, lines = rm.compare(tiny_manifest(), new)
    lines = said(lines)
    assert code == 1
    assert "dqn DIFFERS: progress.csv: column train/loss" in lines[0]
    assert "multi DIFFERS: seed_0/weights.npz: arrays q/b" in lines[1]
    assert lines[-1] == "2 case(s) differ or fail"
    # the command line's exit code too
    base_file, new_file = tmp_path / "base.json", tmp_path / "new.json"
    base_file.write_text(json.dumps(tiny_manifest()))
    new_file.write_text(json.dumps(new))
    done = subprocess.run([sys.executable, str(SCRIPT), "compare", str(base_file), str(new_file)], capture_output=True)
    assert done.returncode == 1 and b"column train/loss" in done.stdout
    base_file.write_text(json.dumps(tiny_manifest()))
    assert rm.main(["compare", str(base_file), str(base_file)]) == 0


def test_status_changes() -> None:
    """A case that ran and now fails is fatal, with its error; one that failed and now runs is reported (nothing
    to compare it to) and is fatal only with strict; a missing file or array is named."""
    new = tiny_manifest()
    new["cases"]["dqn"] = {"status": "failed", "error": "exit 2: error: no such key"}
    new["cases"]["async"] = copy.deepcopy(tiny_manifest()["cases"]["multi"])
    del new["cases"]["multi"]["outputs"]["seed_0"]["evaluations.npz"]["results"]
    code, lines = rm.compare(tiny_manifest(), new)
    lines = said(lines)
    assert code == 1
    assert "dqn FAILED: exit 2: error: no such key" in lines[0]
    assert "seed_0/evaluations.npz: arrays results (only in BASE)" in lines[1]
    assert "async now runs (failed in BASE: exit 1: AttributeError: boom)" in lines[2]
    assert lines[-1] == "2 case(s) differ or fail"
    assert rm.compare(tiny_manifest(), new, strict=True)[0] == 1
    only_fixed = tiny_manifest()
    only_fixed["cases"]["async"] = copy.deepcopy(only_fixed["cases"]["dqn"])
    assert rm.compare(tiny_manifest(), only_fixed)[0] == 0
    assert rm.compare(tiny_manifest(), only_fixed, strict=True)[0] == 1


def test_hashes_drop_wall_clock_columns_and_see_dtype_changes(tmp_path: Path) -> None:
    progress = tmp_path / "progress.csv"
    progress.write_text("step,time/fps,time/time_elapsed,time/total_timesteps,train/loss\n1,10.5,0.1,1,0.5\n")
    hashed = rm.hash_csv(progress)
    assert hashed["columns"] == ["step", "time/total_timesteps", "train/loss"]
    assert hashed["dropped"] == ["time/fps", "time/time_elapsed"] and hashed["rows"] == 1
    progress.write_text("step,time/fps,time/time_elapsed,time/total_timesteps,train/loss\n1,99.0,7.0,1,0.5\n")
    assert rm.hash_csv(progress) == hashed  # only the wall clock moved
    assert rm.is_wall_clock("perf/update_time") and not rm.is_wall_clock("time/iterations")
    np.savez(tmp_path / "a.npz", w=np.zeros(3, np.float32))
    np.savez(tmp_path / "b.npz", w=np.zeros(3, np.float64))
    assert rm.hash_npz(tmp_path / "a.npz") != rm.hash_npz(tmp_path / "b.npz")


def test_every_case_need_is_a_case_that_comes_first() -> None:
    names = [c.name for c in rm.CASES]
    assert len(set(names)) == len(names)
    for i, case in enumerate(rm.CASES):
        assert all(names.index(need) < i for need in case.needs), case.name
    assert rm.with_needs(["cql_finetune"]) == ["dqn_cartpole", "data_cartpole", "cql_cartpole", "cql_finetune"]


@pytest.mark.slow
def test_the_run_matrix_reproduces_the_baseline(tmp_path: Path) -> None:
    baseline = json.loads(BASELINE.read_text())
    here, there = rm.cpu_info()["key"], baseline["cpu"]["key"]
    if here != there:
        pytest.skip(f"the baseline was recorded on another CPU ({there}; this one: {here}): floats may differ")
    out = tmp_path / "new.json"
    cmd = [sys.executable, str(SCRIPT), "check", "--baseline", str(BASELINE), "--out", str(out), "--jobs", "2"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=3600)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]

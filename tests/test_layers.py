"""The import contracts of ``make lint`` (``pyproject.toml`` ``[tool.importlinter]``) hold, and they bite: a copy of
the package with one import pointing up a layer (the gatherer importing the runner) or one circle between two
modules breaks them, naming the import."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")
pytestmark = pytest.mark.skipif(not LINT.exists(), reason="import-linter is a dev tool (make install-dev)")


def lint(root: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` on the ``cardio`` package found under ``root`` (with this repo's contracts)."""
    return subprocess.run(
        [str(LINT), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
    )


def copy_with(tmp_path: Path, module: str, line: str) -> Path:
    """A copy of ``cardio/`` whose ``module`` (a path under it) ends with ``line``."""
    shutil.copytree(ROOT / "cardio", tmp_path / "cardio", ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / "cardio" / module
    target.write_text(target.read_text() + f"\n{line}\n")
    return tmp_path


def test_the_contracts_hold_on_the_package() -> None:
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "0 broken" in result.stdout


def test_an_import_up_a_layer_breaks_them(tmp_path: Path) -> None:
    result = lint(copy_with(tmp_path, "gatherer.py", "import cardio.runner  # noqa"))
    assert result.returncode != 0
    assert "cardio.gatherer is not allowed to import cardio.runner" in result.stdout


def test_a_circle_breaks_them(tmp_path: Path) -> None:
    """The storage imports the observation pool; the pool importing the storage closes a circle."""
    result = lint(copy_with(tmp_path, "buffers/obs_pool.py", "import cardio.buffers.storage  # noqa"))
    assert result.returncode != 0
    assert "No import circles between the modules of a package BROKEN" in result.stdout


def test_two_parts_of_one_layer_stay_apart(tmp_path: Path) -> None:
    result = lint(copy_with(tmp_path, "buffers/nstep.py", "import cardio.envs  # noqa"))
    assert result.returncode != 0
    assert "cardio.buffers is not allowed to import cardio.envs" in result.stdout


def test_torch_in_a_jax_twin_breaks_them(tmp_path: Path) -> None:
    result = lint(copy_with(tmp_path, "agents/jax/dqn.py", "import torch  # noqa"))
    assert result.returncode != 0
    assert "The JAX twins never import torch BROKEN" in result.stdout

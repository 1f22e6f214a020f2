"""The package as a user gets it: configs found from a checkout or a wheel, one version, a license that matches,
every package folder shipped, and a user's own agent + config run from a folder outside the repo."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import tomllib
import torch
from setuptools import find_packages

import cardio
from cardio import paths
from tests.helpers import pythonpath

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_configs_are_found_in_a_checkout() -> None:
    assert paths.config_dir() == ROOT / "configs"


def test_every_package_folder_ships() -> None:
    """pyproject lists the packages by hand (configs/ is mapped into the wheel): a new folder must be added."""
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    on_disk = {p for p in find_packages(str(ROOT), include=["cardio", "cardio.*"])}
    assert on_disk | {"cardio.configs", "hydra_plugins.cardio_searchpath", "hydra_plugins.cardio_slurm"} == listed
    assert PYPROJECT["tool"]["setuptools"]["package-dir"] == {"cardio.configs": "configs"}


def test_version_is_written_once_and_the_license_matches() -> None:
    assert PYPROJECT["project"]["dynamic"] == ["version"] and "version" not in PYPROJECT["project"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "cardio.version.__version__"}
    assert f"version: {cardio.__version__}" in (ROOT / "CITATION.cff").read_text()
    assert PYPROJECT["project"]["license"] == "MIT" and (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert PYPROJECT["project"]["name"] == cardio.DISTRIBUTION


def run_cardio(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m cardio ...`` (the ``cardio`` command) in ``cwd``; PYTHONPATH names this checkout only so that
    *cardio* imports from it, never the user's folder."""
    env = {**os.environ, "PYTHONPATH": pythonpath(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "cardio", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def test_user_agent_and_config_outside_the_repo(tmp_path: Path) -> None:
    """examples/reinforce copied to a folder outside the repo: its module and its configs/ are found."""
    assert not tmp_path.resolve().is_relative_to(ROOT)
    user = tmp_path / "my_project"
    shutil.copytree(ROOT / "examples" / "reinforce", user)
    small = ["runner.total_steps=400", "runner.schedule.n_steps=200", "runner.eval_episodes=2", "logger=csv"]
    done = run_cardio(user, "train", "agent=reinforce", *small, f"hydra.run.dir={user / 'run'}")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "reinforce.ReinforceConfig" in (user / "run" / "config.yaml").read_text()
    assert "train/policy_gradient_loss" in (user / "run" / "progress.csv").read_text().splitlines()[0]
    evaluated = run_cardio(user, "evaluate", f"run={user / 'run'}", "episodes=2", "checkpoint=run/last.ckpt",
                           "trust_pickle=true")  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]

    # negative control: from a folder without the user's files, agent=reinforce does not exist
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    missing = run_cardio(elsewhere, "train", "agent=reinforce", *small)
    assert missing.returncode != 0 and "reinforce" in missing.stderr + missing.stdout


def load_example() -> types.ModuleType:
    """``examples/reinforce/reinforce.py`` as a module (not on the import path: the example lives outside cardio)."""
    spec = importlib.util.spec_from_file_location("reinforce_example", ROOT / "examples" / "reinforce" / "reinforce.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("paid", [1, 0], ids=["action1_pays", "action0_pays"])
def test_example_reinforce_update_moves_toward_the_paying_action(paid: int) -> None:
    """A one-step bandit: the action that pays gets more likely after a few updates. Parametrised both ways, so a
    flipped sign in the loss (or returns-to-go that ignore the reward) fails one of the two cases."""
    example = load_example()
    torch.manual_seed(0)
    space = gym.spaces.Box(-1.0, 1.0, (3,))
    agent = example.ReinforceConfig(lr=0.05, hidden=8).build(space, gym.spaces.Discrete(2))
    obs = np.ones((32, 4, 3), np.float32)  # [T, N, 3]: one state, every step a one-step episode

    def p_action1() -> float:
        with torch.no_grad():
            return float(agent.pi(obs[0, 0]).probs[1])

    before = p_action1()
    for _ in range(5):
        action = agent.act(obs.reshape(-1, 3), explore=True)[0].reshape(32, 4)
        done = np.ones((32, 4), bool)
        reward = (action == paid).astype(np.float32)
        agent.update({"obs": obs, "action": action, "reward": reward, "terminated": done, "truncated": ~done})
    after = p_action1()
    assert after > before + 0.1 if paid == 1 else after < before - 0.1, (before, after)


SWEEP_FILE = """\
# the user's own sweep file, in their project's configs/sweep/
study_name: mine
n_trials: 2
plots: false
overrides: [runner.total_steps=400, runner.schedule.n_steps=200, runner.eval_episodes=2, logger=csv]
params:
  agent.lr: {type: float, low: 1.0e-3, high: 1.0e-1, log: true}
"""


def test_user_sweep_file_outside_the_repo(tmp_path: Path) -> None:
    """``cardio sweep sweep=mine`` in a user's folder finds its ``configs/sweep/mine.yaml`` (and the agent that
    file sweeps, from the same folder), runs two trials into a SQLite study and exports the best one there."""
    user = tmp_path / "my_project"
    shutil.copytree(ROOT / "examples" / "reinforce", user)
    (user / "configs" / "sweep").mkdir()
    (user / "configs" / "sweep" / "mine.yaml").write_text(SWEEP_FILE)
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    done = run_cardio(user, "sweep", "sweep=mine", "agent=reinforce", f"storage={storage}")
    assert done.returncode == 0, done.stderr[-3000:]

    import optuna

    study = optuna.load_study(study_name="mine", storage=storage)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    assert all(1e-3 <= t.params["agent.lr"] <= 1e-1 for t in study.trials)
    trial_config = (user / "outputs" / "sweeps" / "mine" / "trial_0001" / "seed_0" / "config.yaml").read_text()
    assert "reinforce.ReinforceConfig" in trial_config and "total_steps: 400" in trial_config
    assert "/agent: reinforce" in (user / "configs" / "experiment" / "mine_best.yaml").read_text()

    # negative control: the same command from a folder without the user's configs/ does not find the file
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    missing = run_cardio(elsewhere, "sweep", "sweep=mine", f"storage={storage}")
    assert missing.returncode != 0 and "sweep=mine: not in" in missing.stderr


def test_unknown_subcommand_says_what_exists(tmp_path: Path) -> None:
    done = run_cardio(tmp_path, "trian")
    assert done.returncode != 0 and "unknown command 'trian'" in done.stderr and "train" in done.stderr


@pytest.mark.slow
def test_built_wheel_trains_from_a_fresh_venv() -> None:
    """.ci/wheel.sh: build, install torch then the wheel into a fresh venv, train from outside the repo."""
    if shutil.which("git") is None:
        pytest.skip("git needed to export a clean tree")
    done = subprocess.run(["bash", str(ROOT / ".ci" / "wheel.sh")], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    assert "wheel check passed" in done.stdout


def test_readme_links_docs_pages_that_exist_and_the_site_lists_every_page() -> None:
    import re

    import yaml

    links = re.findall(r"\]\((docs/[^)#]+)", (ROOT / "README.md").read_text())
    assert "docs/install.md" in links and "docs/index.md" in links
    assert all((ROOT / link).is_file() for link in links), [link for link in links if not (ROOT / link).is_file()]

    def pages(nav: list) -> set[str]:
        out: set[str] = set()
        for item in nav:
            value = next(iter(item.values())) if isinstance(item, dict) else item
            out |= pages(value) if isinstance(value, list) else {value}
        return out

    nav = pages(yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"])
    on_disk = {str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md")}
    assert nav == on_disk, (sorted(on_disk - nav), sorted(nav - on_disk))

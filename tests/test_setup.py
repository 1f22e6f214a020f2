"""Set-up files agree with each other: environment.yml vs pyproject.toml vs Makefile; make forwards overrides."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import tomllib
import yaml
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[1]


def makefile_default(name: str) -> str:
    match = re.search(rf"^{name} \?= (.+)$", (ROOT / "Makefile").read_text(), re.M)
    assert match, f"Makefile has no `{name} ?=` default"
    return match.group(1).strip()


def test_environment_yml_agrees_with_pyproject_and_makefile() -> None:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    python = next(d for d in conda if d.startswith("python="))
    assert python.split("=")[1] + ".0" in SpecifierSet(project["requires-python"])
    # the same torch pin the Makefile installs first, then the package with the extras of `make install-dev`,
    # every other package at its locked version
    assert makefile_default("TORCH") in pip and "-c requirements.lock" in pip
    extras = re.findall(r'pip install -q -c \$\(LOCK\) -e "\.\[(\w+)\]"', (ROOT / "Makefile").read_text())
    assert extras == ["train", "dev"] and "-e .[dev]" in pip
    assert all(extra in project["optional-dependencies"] for extra in extras)
    # torch is a dependency of the package too, and the pin satisfies it
    torch_req = next(r for r in project["dependencies"] if r.startswith("torch"))
    assert makefile_default("TORCH").split("==")[1] in SpecifierSet(torch_req[len("torch") :])


def make_dry_run(*words: str) -> str:
    out = subprocess.run(
        ["make", "-n", "-o", ".venv/.cardio-installed", *words], cwd=ROOT, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_make_forwards_variable_words_as_hydra_overrides() -> None:
    cmd = make_dry_run("train", "agent=dqn", "env=CartPole", "seed=3", "runner.total_steps=20000", "TORCH=torch")
    line = next(ln for ln in cmd.splitlines() if "scripts/train.py" in ln)
    for word in ("agent=dqn", "env=CartPole", "seed=3", "runner.total_steps=20000"):
        assert word in line.split()
    assert "TORCH=torch" not in line  # make's own knobs stay with make


def test_make_multirun_passes_dash_m() -> None:
    line = next(ln for ln in make_dry_run("multirun", "seed=0,1,2").splitlines() if "scripts/train.py" in ln)
    assert line.split()[-2:] == ["-m", "seed=0,1,2"] or ("-m" in line.split() and "seed=0,1,2" in line.split())


def test_train_script_runs_end_to_end(tmp_path: Path) -> None:
    overrides = [
        f"hydra.run.dir={tmp_path}",
        "runner.total_steps=501",  # not a multiple of env.num_envs: the warning must read cleanly
        "env.num_envs=2",
        "runner.schedule.learning_starts=64",
        "runner.schedule.train_freq=64",
        "runner.schedule.gradient_steps=8",
        "runner.eval_episodes=2",
        "runner.log_interval=256",
        "logger=csv",
    ]
    out = subprocess.run(
        [sys.executable, "scripts/train.py", *overrides], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "config.yaml").is_file()
    header, *rows = (tmp_path / "progress.csv").read_text().splitlines()
    assert "rollout/ep_rew_mean" in header and "eval/mean_reward" in header and len(rows) >= 2
    assert "lr: 0.0023" in (tmp_path / "config.yaml").read_text()  # the zoo numbers were applied
    assert "agent" in out.stdout and "runner" in out.stdout  # the config tree was printed
    assert "UserWarning: runner.total_steps=501 is not a multiple of env.num_envs=2" in out.stderr
    assert "_internal" not in out.stderr  # not attributed to a line inside Hydra

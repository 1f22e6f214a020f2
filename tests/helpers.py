"""Helpers of the tests that run this repo's scripts as a user does: tiny DQN runs, scripts run from the repo root."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
"""The checkout under test."""

TINY = [
    "runner.total_steps=600",
    "runner.eval_freq=300",
    "runner.eval_episodes=2",
    "runner.log_interval=300",
    "runner.schedule.learning_starts=100",
    "runner.schedule.train_freq=4",
    "runner.schedule.gradient_steps=1",
    "runner.schedule.batch_size=32",
    "agent.hidden_sizes=[16]",
]
"""Overrides for DQN runs of about a second: 600 env steps, a few updates, evaluated at 300 and at the end."""


def run(*command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """``python <command>`` (a script of this repo and its words) as a user runs it, from the repo root.

    Args:
        command: the script's path relative to the repo root, then its arguments.
        check: raise ``AssertionError`` with the script's stdout and stderr when it exits non-zero.
    """
    result = subprocess.run(
        [sys.executable, *command], cwd=REPO, capture_output=True, text=True, timeout=300, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{command} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def pythonpath(*paths: str | Path) -> str:
    """A subprocess's ``PYTHONPATH``: ``paths`` first, then the one this process inherited, so that what the
    caller put there (``make test-nojax``'s stand-ins that block jax) reaches the scripts the tests run."""
    inherited = os.environ.get("PYTHONPATH", "")
    return os.pathsep.join([*map(str, paths), *([inherited] if inherited else [])])

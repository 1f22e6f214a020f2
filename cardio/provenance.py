"""Where a run's figures came from: ``provenance.json`` (and ``diff.patch``) in every run dir.

Recorded at the start of a run: the git commit of the cardio source tree and of the working directory's repo
(when that is another one), whether each had uncommitted changes (then ``git diff HEAD`` goes to ``diff.patch``,
``diff-workdir.patch`` for the working directory's repo; untracked files are listed, not copied), the command
line, Python and package versions (torch, gymnasium, numpy, hydra-core...; jax and friends when imported),
platform, CPU and the torch device. A resumed or evaluated run compares what it runs under with what the run
was recorded with and says in one line what differs (:func:`differences`).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from cardio.version import __version__

PROVENANCE_NAME = "provenance.json"
"""The record in the run dir."""
DIFF_NAME = "diff.patch"
"""``git diff HEAD`` of the cardio source tree when it had uncommitted changes."""

PACKAGES = ("torch", "gymnasium", "numpy", "hydra-core", "omegaconf", "optree")
"""Distributions always recorded (with cardio's own)."""
OPTIONAL_PACKAGES = {
    "jax": "jax",
    "jaxlib": "jaxlib",
    "flax": "flax",
    "optax": "optax",
    "stable_baselines3": "stable-baselines3",
    "mujoco": "mujoco",
    "Box2D": "box2d",
    "minari": "minari",
    "wandb": "wandb",
    "optuna": "optuna",
}
"""Module -> distribution, recorded when the module was imported by the run."""


def _git(args: Sequence[str], cwd: Path) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):  # no git, or a hung filesystem
        return None
    return done.stdout if done.returncode == 0 else None


def git_state(path: Path) -> dict[str, Any] | None:
    """``{root, commit, branch, dirty, diff, untracked}`` of the git work tree holding ``path`` (``None`` when it
    is not in one, or git is missing). ``diff`` is ``git diff HEAD``: staged and unstaged changes to tracked files.

    Args:
        path: a file or folder inside the work tree.
    """
    path = path if path.is_dir() else path.parent
    root = _git(["rev-parse", "--show-toplevel"], path)
    commit = _git(["rev-parse", "HEAD"], path)
    if root is None or commit is None:
        return None
    diff = _git(["diff", "HEAD", "--no-color", "--no-ext-diff"], path) or ""
    untracked = (_git(["ls-files", "--others", "--exclude-standard"], Path(root.strip())) or "").split()
    branch = (_git(["rev-parse", "--abbrev-ref", "HEAD"], path) or "").strip()
    return {
        "root": root.strip(),
        "commit": commit.strip(),
        "branch": branch,
        "dirty": bool(diff),
        "diff": diff,
        "untracked": untracked,
    }


def package_versions() -> dict[str, str]:
    """Versions of cardio, :data:`PACKAGES` and the imported :data:`OPTIONAL_PACKAGES`."""
    imported = [dist for module, dist in OPTIONAL_PACKAGES.items() if sys.modules.get(module) is not None]
    names = [*PACKAGES, *imported]  # a None in sys.modules is an import that was blocked, not one that ran
    versions = {"cardio": __version__}  # the source's own, whether installed as a wheel or run from a checkout
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_info(device: str) -> dict[str, Any]:
    """The torch device the agent ran on, with the GPU's name when there is one (torch only if imported)."""
    info: dict[str, Any] = {"device": device, "cpu": _cpu(), "cpu_count": os.cpu_count()}
    torch = sys.modules.get("torch")
    if torch is not None:
        if torch.cuda.is_available():
            info["cuda"] = torch.version.cuda
            info["gpu"] = torch.cuda.get_device_name(0)
    return info


def collect(device: str = "cpu", argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Everything :mod:`cardio.provenance` records, as one JSON-ready dict (diffs included).

    Args:
        device: the configured torch device (``cfg.device``).
        argv: the command line (default ``sys.argv``).
    """
    source = git_state(Path(__file__).resolve().parent)
    workdir = git_state(Path.cwd())
    if workdir is not None and source is not None and workdir["root"] == source["root"]:
        workdir = None  # running inside cardio's own repo: one record is enough
    return {
        "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": [sys.executable, *(sys.argv if argv is None else argv)],
        "cwd": str(Path.cwd()),
        "git": source,
        "workdir_git": workdir,
        "python": sys.version.split()[0],
        "packages": package_versions(),
        "platform": platform.platform(),
        "hostname": platform.node(),
        **device_info(device),
    }


def _summary(record: dict[str, Any]) -> dict[str, Any]:
    """A record without its diffs, with a hash of each diff in their place (for JSON and comparisons)."""
    out = dict(record)
    for key in ("git", "workdir_git"):
        if out.get(key):
            git = dict(out[key])
            git["diff_sha256"] = hashlib.sha256(git.pop("diff").encode()).hexdigest() if git["dirty"] else None
            out[key] = git
    return out


def write(run_dir: str | Path, record: dict[str, Any]) -> Path:
    """Write ``provenance.json`` and the diffs into ``run_dir``; a resumed run (a record already there) keeps the
    first record and appends its own under ``"resumes"``.

    Args:
        run_dir: the run dir.
        record: from :func:`collect`.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / PROVENANCE_NAME
    summary = _summary(record)
    if path.is_file():
        saved = json.loads(path.read_text())
        saved.setdefault("resumes", []).append(summary)
        path.write_text(json.dumps(saved, indent=2) + "\n")
        return path
    for key, name in (("git", DIFF_NAME), ("workdir_git", "diff-workdir.patch")):
        git = record.get(key)
        if git and git["dirty"]:
            (run_dir / name).write_text(git["diff"])
    path.write_text(json.dumps(summary, indent=2) + "\n")
    return path


def load(run_dir: str | Path) -> dict[str, Any] | None:
    """The run's first record (``None`` for a run dir written before provenance was recorded)."""
    path = Path(run_dir) / PROVENANCE_NAME
    return json.loads(path.read_text()) if path.is_file() else None


def differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """What differs between the code and versions a run was recorded with and the current ones: git commits,
    uncommitted changes, Python and package versions (``"torch 2.13.0 -> 2.14.0"``...).

    Args:
        saved: the run's record (:func:`load`).
        current: the current record (:func:`collect`).
    """
    saved, current = _summary(saved) if "diff" in (saved.get("git") or {}) else saved, _summary(current)
    out = []
    for key, label in (("git", "cardio"), ("workdir_git", "workdir")):
        a, b = saved.get(key) or {}, current.get(key) or {}
        if a.get("commit") != b.get("commit"):
            out.append(f"{label} commit {str(a.get('commit'))[:10]} -> {str(b.get('commit'))[:10]}")
        elif a.get("diff_sha256") != b.get("diff_sha256"):
            out.append(f"{label} uncommitted changes differ")
    if saved.get("python") != current.get("python"):
        out.append(f"python {saved.get('python')} -> {current.get('python')}")
    old, new = saved.get("packages", {}), current.get("packages", {})
    for name in sorted(set(old) & set(new)):
        if old[name] != new[name]:
            out.append(f"{name} {old[name]} -> {new[name]}")
    return out


def check(run_dir: str | Path, current: dict[str, Any], action: str) -> str | None:
    """One line saying how the code and versions now differ from those the run was recorded with (``None`` when
    they match or the run has no record).

    Args:
        run_dir: the run dir.
        current: from :func:`collect`.
        action: what is about to happen, for the message (``"resuming"``, ``"evaluating"``).
    """
    saved = load(run_dir)
    if saved is None:
        return None
    diffs = differences(saved, current)
    if not diffs:
        return None
    return f"{action} {run_dir} under different code or versions than it was run with: {'; '.join(diffs)}"


def record_run(run_dir: str | Path, device: str = "cpu", resuming: bool = False) -> str | None:
    """Record the provenance of a run starting (or resuming) in ``run_dir``; for a resumed run, return the
    one-line note of :func:`check` (``None`` when nothing differs).

    Args:
        run_dir: the run dir.
        device: the configured torch device.
        resuming: the run continues from a checkpoint in ``run_dir``.
    """
    current = collect(device)
    note = check(run_dir, current, "resuming") if resuming else None
    write(run_dir, current)
    return note

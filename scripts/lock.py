"""Refresh ``requirements.lock``: ``make lock`` (after any change to ``pyproject.toml``'s dependencies).

The lock pins every dependency of ``cardio-template[dev]`` (so of ``[train]`` too) as resolved with the CPU
torch pin (``torch==2.13.0+cpu``), torch itself left out: ``make install`` installs ``$(TORCH)`` first (CPU by
default, any CUDA build by override) and then installs cardio with ``-c requirements.lock``, so every other
package gets exactly the locked version. The header records a hash of the dependency tables it was made from;
``tests/test_lock.py`` fails when ``pyproject.toml`` changed without a new lock. The versions already in the lock
are kept where they still satisfy ``pyproject.toml`` (pip-compile's preference for an existing output file), so
adding one dependency changes only its own lines; delete the lock first to move everything to the newest versions.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"
TORCH_PIN = "torch==2.13.0+cpu"
"""The torch the lock is resolved against (its own dependencies are locked; torch is not)."""
HASH_PREFIX = "# pyproject-dependencies-sha256: "


def dependencies_hash(pyproject: Path = ROOT / "pyproject.toml") -> str:
    """sha256 of ``[project] dependencies``, ``optional-dependencies`` and ``requires-python``."""
    project = tomllib.loads(pyproject.read_text())["project"]
    tables = {k: project.get(k) for k in ("dependencies", "optional-dependencies", "requires-python")}
    return hashlib.sha256(json.dumps(tables, sort_keys=True).encode()).hexdigest()


def drop_self(body: str) -> str:
    """The lock without its line for cardio itself (``cardio-template @ file:///...``: the dev extra names the
    project's own extras, and a path on the machine that made the lock is no pin)."""
    out: list[str] = []
    skipping = False
    for line in body.splitlines(keepends=True):
        if not line.startswith(" "):
            skipping = line.startswith("cardio-template")
        if not skipping:
            out.append(line)
    return "".join(out)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        constraint = Path(tmp) / "torch.txt"
        constraint.write_text(TORCH_PIN + "\n")
        out = Path(tmp) / "lock.txt"
        if LOCK.exists():  # pip-compile prefers the pins of an existing output file: a small, reviewable diff
            out.write_text(LOCK.read_text())
        cmd = [sys.executable, "-m", "piptools", "compile", "--quiet", "--extra", "dev", "--strip-extras"]
        cmd += ["--no-emit-index-url", "--no-emit-find-links", "--unsafe-package", "torch", "--no-header"]
        cmd += ["--constraint", str(constraint), "--output-file", str(out), "pyproject.toml"]
        subprocess.run(cmd, check=True, cwd=ROOT)
        body = drop_self(out.read_text())
    header = (
        "# requirements.lock: every dependency of cardio-template[dev] at one version, resolved with "
        f"{TORCH_PIN}\n# (torch itself is installed first, see the Makefile). Refresh: make lock\n"
        f"{HASH_PREFIX}{dependencies_hash()}\n"
    )
    LOCK.write_text(header + body)
    print(f"wrote {LOCK}")


if __name__ == "__main__":
    main()

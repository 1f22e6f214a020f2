"""requirements.lock matches pyproject.toml: made from the same dependency tables (hash in its header) and every
requirement of ``cardio-template[dev]`` is pinned there at a version that satisfies it. ``make lock`` refreshes it."""

from __future__ import annotations

import re
from pathlib import Path

import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from scripts.lock import HASH_PREFIX, LOCK, dependencies_hash

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def pinned() -> dict[str, Version]:
    pins = re.findall(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)", LOCK.read_text(), re.M)
    return {canonicalize_name(name): Version(version) for name, version in pins}


def requirements(extra: str = "dev") -> list[Requirement]:
    """Every requirement of ``cardio-template[extra]``, its own extras followed."""
    out, todo, seen = list(map(Requirement, PROJECT["dependencies"])), [extra], set()
    while todo:
        name = todo.pop()
        seen.add(name)
        for line in PROJECT["optional-dependencies"][name]:
            req = Requirement(line)
            if canonicalize_name(req.name) == canonicalize_name(PROJECT["name"]):
                todo += [e for e in req.extras if e not in seen]
            else:
                out.append(req)
    return out


def test_lock_was_made_from_this_pyproject() -> None:
    header = [line for line in LOCK.read_text().splitlines() if line.startswith(HASH_PREFIX)]
    assert header == [HASH_PREFIX + dependencies_hash()], "pyproject.toml changed since the lock: run `make lock`"


def test_lock_satisfies_every_requirement() -> None:
    pins = pinned()
    assert "torch" not in pins  # installed first, from the Makefile's TORCH pin (CPU or CUDA build)
    for req in requirements():
        name = canonicalize_name(req.name)
        if name == "torch" or (req.marker is not None and not req.marker.evaluate()):
            continue
        assert name in pins, f"{req} is not in {LOCK.name}: run `make lock`"
        assert req.specifier.contains(pins[name], prereleases=True), f"{LOCK.name} pins {name}=={pins[name]}: {req}"


def test_the_check_catches_a_stale_lock(tmp_path: Path) -> None:
    """Negative control: another dependency table gives another hash."""
    changed = (ROOT / "pyproject.toml").read_text().replace('"numpy>=1.26"', '"numpy>=1.27"')
    (tmp_path / "pyproject.toml").write_text(changed)
    assert dependencies_hash(tmp_path / "pyproject.toml") != dependencies_hash()


def test_the_lock_names_no_local_path() -> None:
    text = LOCK.read_text()
    assert "file://" not in text and "cardio-template @" not in text and str(ROOT) not in text

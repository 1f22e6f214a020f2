"""Where cardio's Hydra configs are, in a source checkout and in an installed wheel, and where a user's own go.

The configs live in the repo's ``configs/`` folder; the wheel ships the same folder as the package data of
``cardio.configs`` (``pyproject.toml`` maps it with ``package-dir``), so one function finds them either way.
A user's own configs go in ``configs/`` under the working directory (or the folder named by the
``CARDIO_CONFIG_PATH`` environment variable): the search-path plugin in ``hydra_plugins/cardio_searchpath``
adds it to every cardio command, after cardio's own, so new files (``agent/reinforce.yaml``) are found and
shipped ones are never silently replaced. Files cardio reads outside Hydra's composition (sweep files, dataset
recipes) are looked up by :func:`group_files` in the same folders, in the same order.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def config_dir() -> Path:
    """cardio's own config folder: ``<repo>/configs`` in a source checkout, ``cardio/configs`` in a wheel."""
    for candidate in (_PACKAGE / "configs", _PACKAGE.parent / "configs"):
        if (candidate / "train.yaml").is_file():
            return candidate
    raise FileNotFoundError(f"cardio's configs (train.yaml) are neither in {_PACKAGE / 'configs'} nor beside it")


def user_config_dir() -> Path | None:
    """The user's config folder: ``$CARDIO_CONFIG_PATH``, else ``./configs``; ``None`` when it does not exist
    or is cardio's own folder (running inside the cardio repo)."""
    path = Path(os.environ.get("CARDIO_CONFIG_PATH", "configs")).expanduser().resolve()
    if not path.is_dir() or path == config_dir().resolve():
        return None
    return path


def config_dirs() -> list[Path]:
    """The config folders in the order Hydra searches them: cardio's own, then the user's (when there is one)."""
    user = user_config_dir()
    return [config_dir()] if user is None else [config_dir(), user]


def group_files(group: str) -> dict[str, Path]:
    """The ``<group>/*.yaml`` files of :func:`config_dirs` by name (file stem), for the files cardio reads
    outside Hydra (``sweep``, ``dataset``). A name in both folders is cardio's own file, as in Hydra's search
    path; the user's copy is named in a warning, since it is never read.

    Args:
        group: the config group folder, e.g. ``"sweep"``.
    """
    found: dict[str, Path] = {}
    for folder in config_dirs():
        for path in sorted((folder / group).glob("*.yaml")):
            if path.stem not in found:
                found[path.stem] = path
            else:
                warnings.warn(
                    f"{path} is hidden by cardio's own {found[path.stem]} (cardio's configs come first, as in "
                    f"Hydra's search path); rename yours, or pass its path",
                    stacklevel=2,
                )
    return found


def use_working_directory() -> None:
    """Put the working directory first on the import path, as ``python -m`` does (a console script's own folder
    is there instead), so the user's modules are found by Hydra's ``_target_``."""
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)

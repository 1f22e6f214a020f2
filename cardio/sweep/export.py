"""The end of a sweep: what happened, the best trial as an experiment file, the plots.

The best trial becomes ``<export_dir>/<study>_best.yaml`` (``make train experiment=<study>_best``). That file
may already be there, written by another study of the same name (a quick ``make sweep sweep.n_trials=4
runner.total_steps=3000`` on a fresh clone, whose committed file holds a 10,000-step study's best), or committed
to git. An export replaces only a file that the same study wrote (its ``# Study id:`` line, the study's
``cardio_study_id`` attribute) and that git does not track; otherwise it writes beside it,
``<study>_best_<id>.yaml``, and says so in one line naming both studies. The file is written to a temporary file
and renamed, created with an exclusive link, so workers finishing at once on a cluster never tear it nor take a
name from each other.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import uuid
import warnings
from pathlib import Path
from typing import Any

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf
from optuna.trial import TrialState

from cardio.sweep.settings import SweepConfig
from cardio.sweep.space import Param

SKIPPED_KEYS = ("seed", "seeds", "run_dir")
"""Overrides a trial sets itself, never part of the searched or exported configuration."""

STUDY_ID_ATTR = "cardio_study_id"
"""User attribute of a study: a random id given when it is created, written into its exported file."""

STUDY_ID_LINE = re.compile(r"^# Study id: ([0-9a-f]+)", re.M)
HEADER_LINE = re.compile(r"^# Best trial (\d+) of Optuna study '(.*?)' \((.*?)\):\n# (.*?),", re.M)


def study_id(study: optuna.Study) -> str:
    """The study's id (:data:`STUDY_ID_ATTR`), given on first use. Workers racing to give one leave one of
    theirs: every reader after that sees the same."""
    if STUDY_ID_ATTR not in study.user_attrs:
        study.set_user_attr(STUDY_ID_ATTR, uuid.uuid4().hex)
    return str(study.user_attrs[STUDY_ID_ATTR])


def report(
    study: optuna.Study,
    settings: SweepConfig,
    space: dict[str, Param],
    choices: dict[str, str | None],
    trial_root: Path,
) -> Path | None:
    """Print the outcome, export the best trial as an experiment file, draw the plots; the file written."""
    states = {s: sum(t.state == s for t in study.get_trials(deepcopy=False)) for s in TrialState}
    print(
        f"study {study.study_name!r}: {states[TrialState.COMPLETE]} complete, {states[TrialState.PRUNED]} pruned, "
        f"{states[TrialState.FAIL]} failed"
    )
    for line in stop_reasons(study):
        print(f"  {line}")
    if not states[TrialState.COMPLETE]:
        print("no trial completed: no best trial, no config exported")
        return None
    best = study.best_trial
    print(f"best trial {best.number}: {settings.metric} ({settings.objective}) = {best.value:.4g}")
    for key, value in best.params.items():
        print(f"  {key} = {space[key].decode(value) if key in space else value}")
    path, note = export_best(study, settings, choices)
    if note is not None:
        print(note)
    print(f"best config: {path}  ->  make train experiment={path.stem}")
    if settings.plots:
        for png in plot_study(study, trial_root):
            print(f"plot: {png}")
    return path


def stop_reasons(study: optuna.Study) -> list[str]:
    """Why trials were pruned or failed, one line per reason: ``2 pruned (trials 0, 1): diverged: train/loss=nan``.

    Reasons differing only in the env step they happened at count as one (``at env step N`` is dropped).
    """
    reasons: dict[str, list[int]] = {}
    for t in study.get_trials(deepcopy=False):
        if t.state == TrialState.PRUNED:
            why = str(t.user_attrs.get("pruned_reason", "pruned (no reason recorded)"))
            kind = "pruned"
        elif t.state == TrialState.FAIL:
            why = str(t.user_attrs.get("fail_reason", "failed (worker died or no reason recorded)"))
            kind = "failed"
        else:
            continue
        key = f"{kind}: " + re.sub(r" at env step \d+", "", (why.splitlines() or [""])[0])
        reasons.setdefault(key, []).append(t.number)
    lines = []
    for key, numbers in reasons.items():
        kind, _, why = key.partition(": ")
        shown = ", ".join(map(str, numbers[:10])) + (", ..." if len(numbers) > 10 else "")
        lines.append(f"{len(numbers)} {kind} (trial{'s' if len(numbers) > 1 else ''} {shown}): {why}")
    return lines


def experiment_text(
    best: optuna.trial.FrozenTrial, settings: SweepConfig, choices: dict[str, str | None], study_id: str, name: str
) -> str:
    """The best trial's overrides as a ``# @package _global_`` experiment file (groups become defaults).

    Args:
        best: the trial.
        settings: the sweep's settings.
        choices: the config group choices of the composed base config (their overrides become ``defaults``).
        study_id: the study's :func:`study_id`, written as ``# Study id:``.
        name: the file's experiment name (``make train experiment=<name>``).
    """
    s = settings
    seeds = sorted(int(k.removeprefix("value_seed_")) for k in best.user_attrs if k.startswith("value_seed_"))
    seeds = seeds or s.seeds
    parsed = OverridesParser.create().parse_overrides(best.user_attrs["overrides"])
    groups: list[str] = []
    values: DictConfig = OmegaConf.create({})
    for ov in parsed:
        key = ov.key_or_group
        if key in SKIPPED_KEYS or key.startswith("hydra") or ov.is_delete():
            continue
        if key in choices:
            groups.append(f"  - override /{key}: {ov.value()}")
        else:
            OmegaConf.update(values, key, ov.value(), force_add=True)
    header = [
        "# @package _global_",
        f"# Best trial {best.number} of Optuna study {s.study_name!r} ({s.storage_url}):",
        f"# {s.metric} ({s.objective}) = {best.value:.6g}, {s.seed_aggregate} over seeds {seeds}. Written by "
        "scripts/sweep.py.",
        f"# `make train experiment={name}` reproduces it (seed {seeds[0]}: add seed={seeds[0]}).",
        f"# Study id: {study_id} (an export replaces this file only for the same study)",
    ]
    body = ["defaults:", *groups] if groups else []
    return "\n".join(header + body) + "\n" + (OmegaConf.to_yaml(values) if len(values) else "")


def written_by(path: Path) -> tuple[str | None, str]:
    """``(study id, description)`` of the study that wrote the experiment file ``path`` (id ``None``: a file with
    no ``# Study id:`` line, hand-written or exported before ids)."""
    text = path.read_text(errors="replace")
    found, header = STUDY_ID_LINE.search(text), HEADER_LINE.search(text)
    if header is None:
        return (found.group(1) if found else None), "a file no sweep wrote"
    number, name, storage, value = header.groups()
    what = f"trial {number} of study {name!r} in {storage}, {value}"
    return (found.group(1) if found else None), f"the best of another study ({what})"


def tracked_by_git(path: Path) -> bool:
    """Whether ``path`` is under version control (``git ls-files --error-unmatch``; ``False`` without git)."""
    try:
        done = subprocess.run(
            ["git", "ls-files", "--error-unmatch", "--", path.name],
            cwd=path.parent,
            capture_output=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def export_best(study: optuna.Study, settings: SweepConfig, choices: dict[str, str | None]) -> tuple[Path, str | None]:
    """Write the best trial as ``<export_dir>/<study_name>_best.yaml``, or beside it (see the module docstring).

    Returns:
        The file written, and the line saying why it is not ``<study_name>_best.yaml`` (``None`` when it is).
    """
    own = study_id(study)
    folder = Path(settings.export_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{settings.study_name}_best.yaml"
    for _ in range(3):  # a file another process created meanwhile is judged again
        if not path.exists():
            if _create(path, experiment_text(study.best_trial, settings, choices, own, path.stem)):
                return path, None
            continue
        holder, what = written_by(path)
        tracked = tracked_by_git(path)
        if holder == own and not tracked:
            _replace(path, experiment_text(study.best_trial, settings, choices, own, path.stem))
            return path, None
        beside = folder / f"{settings.study_name}_best_{own[:8]}.yaml"
        _replace(beside, experiment_text(study.best_trial, settings, choices, own, beside.stem))
        why = (
            "is under version control"
            if holder == own
            else f"holds {what}" + (" and is under version control" if tracked else "")
        )
        return beside, (
            f"note: {path} {why}: left as it is; this study's best ({settings.study_name!r}, id {own[:8]}) "
            f"is in {beside}"
        )
    raise RuntimeError(f"{path} keeps appearing and disappearing; export the best trial again")


def _temporary(path: Path, text: str) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    return Path(tmp)


def _create(path: Path, text: str) -> bool:
    """Write ``path`` only if it does not exist (``os.link`` is exclusive); whether it did."""
    tmp = _temporary(path, text)
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)


def _replace(path: Path, text: str) -> None:
    os.replace(_temporary(path, text), path)


def plot_study(study: optuna.Study, folder: Path) -> list[Path]:
    """``history.png`` (optimisation history) and ``importance.png`` (fANOVA importances) under ``folder``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, plot in (("history", ovm.plot_optimization_history), ("importance", ovm.plot_param_importances)):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                ax: Any = plot(study)
            fig: Any = ax.figure
            fig.tight_layout()
            fig.savefig(folder / f"{name}.png", dpi=100)
            plt.close(fig)
            written.append(folder / f"{name}.png")
        except Exception as exc:  # e.g. importances need two complete trials that differ
            warnings.warn(f"could not draw {name}.png: {exc}", stacklevel=2)
    return written

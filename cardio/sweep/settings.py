"""Sweep settings: ``configs/sweep/<name>.yaml`` checked against :class:`SweepConfig`, plus command-line overrides.

``scripts/sweep.py`` receives one flat list of Hydra-style words (``make sweep agent=dqn env=CartPole
sweep.n_trials=40``). :func:`split_overrides` sends ``sweep=<name>`` and ``sweep.<key>=...`` (and the
shorthands ``n_trials= timeout= n_workers= storage= study_name=``) to the sweep settings; everything else is
an override of ``train.yaml`` that every trial composes with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from cardio.errors import ConfigError
from cardio.paths import config_dir, config_dirs, group_files
from cardio.sweep.space import parse_space

CONFIG_DIR = config_dir()
"""cardio's own ``configs/`` (train.yaml, shipped sweep files); a user's ``./configs`` joins it (cardio/paths.py)."""

SHORTHANDS = ("n_trials", "timeout", "n_workers", "storage", "study_name")
"""Sweep keys accepted without the ``sweep.`` prefix (none of them is a key of train.yaml)."""


class SweepConfigError(ConfigError):
    """A sweep file or sweep override that cannot work; the message names the key and the way out."""


@dataclass
class SweepConfig:
    """An Optuna study over cardio runs; the same keys, in the same order, as ``configs/sweep/*.yaml``."""

    study_name: str | None = None
    """Study name in the storage; re-running with the same name resumes it. Default: the sweep file's name."""
    storage: str | None = None
    """SQLAlchemy URL, e.g. ``postgresql://user@host/db`` for workers on several machines, or
    ``journal:///<path>``: Optuna's journal file, for workers on a shared (NFS) file system. Default:
    ``sqlite:///<output_dir>/<study_name>.db`` (a file, nothing to start); on SLURM the journal
    ``journal:///<output_dir>/<study_name>.journal``."""
    direction: str = "maximize"
    """``maximize`` or ``minimize`` the objective."""
    metric: str = "eval/mean_reward"
    """Evaluation metric reported to the pruner and optimised."""
    objective: str = "final"
    """``final``: the last evaluation; ``mean_eval``: the mean of all periodic evaluations (sample efficiency)."""
    n_trials: int = 20
    """Finished (complete or pruned) trials the study should hold; failed trials are replaced."""
    timeout: float | None = None
    """Seconds after which workers start no new trial (running ones finish)."""
    n_workers: int = 1
    """Worker processes on this machine, all pulling trials from the one study."""
    seeds: list[int] = field(default_factory=lambda: [0])
    """Seeds each trial trains with, one after another (a ``seeds=[...]`` train override instead trains them
    together in one process: JAX off-policy agents); the trial's value aggregates them (more seeds, less noise)."""
    seed_aggregate: str = "mean"
    """How the trial's value is made from its seeds' values: ``mean`` or ``iqm`` (interquartile mean)."""
    sampler: str = "tpe"
    """``tpe``, ``random`` or ``cmaes`` (floats and ints only)."""
    sampler_seed: int | None = 0
    """Seeds the sampler; each worker adds its index and the number of trials already in the study."""
    enqueue_base: bool = True
    """Make a new study's first trial the composed config's own values (a baseline), where they fit the space."""
    pruner: str = "median"
    """``median``, ``successive_halving``, ``hyperband``, ``none``, or an Optuna pruner's class path."""
    pruner_args: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of the pruner's class, e.g. ``{n_startup_trials: 5, n_warmup_steps: 10000}``."""
    heartbeat_interval: int = 10
    """Seconds between a running trial's heartbeats in the storage."""
    grace_period: int | None = None
    """Seconds without heartbeat after which a trial (its worker killed) is marked failed; default 2x interval."""
    max_retries: int = 2
    """Times the parameters of a trial whose worker stopped (killed, preempted, cancelled) are asked again."""
    max_failed_trials: int | None = None
    """Stop the sweep after this many failed trials (default: n_trials), so a broken config cannot loop forever."""
    output_dir: str = "outputs/sweeps"
    """Trial run dirs go to ``<output_dir>/<study_name>/trial_<n>/seed_<s>``, plots next to them."""
    export_dir: str = "configs/experiment"
    """Where the best trial is written as ``<study_name>_best.yaml`` (``make train experiment=<that>``)."""
    plots: bool = True
    """Draw ``history.png`` and ``importance.png`` at the end."""
    overrides: list[str] = field(default_factory=list)
    """Fixed overrides of every trial (shorter runs, a logger...), e.g. ``[runner.total_steps=20000]``."""
    params: dict[str, Any] = field(default_factory=dict)
    """The search space: config key -> spec, see :mod:`cardio.sweep.space`."""

    def __post_init__(self) -> None:
        if self.direction not in ("maximize", "minimize"):
            raise SweepConfigError(f"sweep.direction must be maximize or minimize, got {self.direction!r}")
        if self.n_trials < 1 or self.n_workers < 1:
            raise SweepConfigError(
                f"sweep.n_trials and sweep.n_workers must be >= 1, got {self.n_trials} and {self.n_workers}"
            )
        if not self.seeds:
            raise SweepConfigError("sweep.seeds must list at least one seed, e.g. sweep.seeds=[0,1]")
        if self.seed_aggregate not in ("mean", "iqm"):
            raise SweepConfigError(f"sweep.seed_aggregate must be mean or iqm, got {self.seed_aggregate!r}")
        if not self.params:
            raise SweepConfigError("sweep.params is empty: add a search space, see docs/sweeps.md")
        parse_space(self.params)

    @property
    def storage_url(self) -> str:
        if self.storage:
            return self.storage
        return f"sqlite:///{Path(self.output_dir) / f'{self.study_name}.db'}"


def split_overrides(argv: list[str]) -> tuple[str | None, list[str], list[str]]:
    """``(sweep file name, sweep overrides as dotlist, train overrides)`` from the command-line words."""
    name: str | None = None
    sweep: list[str] = []
    train: list[str] = []
    for word in argv:
        key, sep, value = word.lstrip("+").partition("=")
        if not sep:
            raise SweepConfigError(f"cannot read {word!r}: sweep overrides are key=value words, e.g. sweep.n_trials=40")
        if key == "sweep":
            name = value
        elif key.startswith("sweep."):
            sweep.append(f"{key[len('sweep.') :]}={value}")
        elif key in SHORTHANDS:
            sweep.append(f"{key}={value}")
        else:
            train.append(word)
    return name, sweep, train


def find_sweep_file(name: str | None, agent: str, env: str) -> Path:
    """``configs/sweep/<name>.yaml`` (or ``name`` itself when it is a path to a ``.yaml`` file); without a name
    ``<agent>_<env>.yaml`` (any case), then ``<agent>.yaml``. The sweep folders searched are cardio's own and the
    user's (``./configs/sweep`` or ``$CARDIO_CONFIG_PATH/sweep``), as Hydra searches ``train.yaml``'s groups
    (:func:`cardio.paths.group_files`).

    Raises:
        SweepConfigError: no such file; the message lists the folders searched and the files they hold.
    """
    if name and name.endswith(".yaml") and Path(name).is_file():
        return Path(name)
    files = group_files("sweep")
    wanted = [name] if name else [f"{agent}_{env}", agent]
    for stem in wanted:
        for candidate, path in files.items():
            if candidate.lower() == stem.lower():
                return path
    asked = f"sweep={name}" if name else f"no sweep file for agent={agent} env={env} ({' or '.join(wanted)})"
    folders = " or ".join(str(folder / "sweep") for folder in config_dirs())
    raise SweepConfigError(
        f"{asked}: not in {folders}; available: {', '.join(sorted(files)) or 'none'}. "
        f"Pick one with sweep=<name> or add configs/sweep/{wanted[0]}.yaml to your project (see docs/sweeps.md)"
    )


def load_settings(path: Path, dotlist: list[str]) -> SweepConfig:
    """Merge the sweep file and ``key=value`` overrides onto :class:`SweepConfig` (unknown keys are refused)."""
    schema = OmegaConf.structured(SweepConfig)
    try:
        from_file, overrides = OmegaConf.load(path), OmegaConf.from_dotlist(dotlist)
        if isinstance(from_file, DictConfig):  # a list is refused by the merge, naming it
            drop_other_pruners_args(from_file, overrides, path.name)
        merged = OmegaConf.merge(schema, from_file, overrides)
    except Exception as exc:  # omegaconf's ValidationError / ConfigKeyError name the bad key
        raise SweepConfigError(f"sweep settings from {path} and {dotlist}: {exc}") from exc
    data: dict[str, Any] = OmegaConf.to_container(merged, resolve=True)  # type: ignore[assignment]
    data["study_name"] = data["study_name"] or path.stem
    return SweepConfig(**data)


def drop_other_pruners_args(from_file: DictConfig, overrides: DictConfig, name: str) -> None:
    """The file's ``pruner_args`` are the arguments of the file's ``pruner``: an override that picks another pruner
    (``sweep.pruner=hyperband``) starts that pruner from its defaults plus the ``sweep.pruner_args.<key>=...`` given
    with it, and says so, rather than handing it keywords it does not take (or takes with another meaning)."""
    new_pruner, file_pruner = overrides.get("pruner"), from_file.get("pruner", SweepConfig.pruner)
    if new_pruner is None or new_pruner == file_pruner:
        return
    if from_file.get("pruner_args"):
        print(
            f"sweep.pruner={new_pruner}: {name}'s pruner_args {dict(from_file.pruner_args)} are "
            f"{file_pruner}'s, not carried over (sweep.pruner_args.<key>=... gives {new_pruner}'s)"
        )
    from_file.pruner_args = {}

"""The Optuna sweep driver: one study, any number of worker processes and machines, the same Runner per trial.

What a sweep does (``make sweep agent=dqn env=CartPole sweep=dqn_cartpole``, see docs/sweeps.md):

1. compose ``train.yaml`` with the command-line overrides once and check that every searched key exists;
2. open (or create, or resume) the study in its storage: SQLite file by default, any SQLAlchemy URL otherwise;
3. run ``n_workers`` worker processes; each loops: fail trials whose worker died (heartbeat), stop when the study
   holds ``n_trials`` finished trials, else run one trial;
4. a trial samples the search space, composes ``train.yaml`` with the overrides plus the sampled values
   (``hydra.compose``), builds through :mod:`cardio.build`, and trains once per seed of ``sweep.seeds``, or all
   the seeds of a ``seeds=[...]`` override together in one process (cardio/multiseed.py); :class:`TrialReporter`
   reports every evaluation and prunes; the trial's value is the mean or IQM over seeds (``sweep.seed_aggregate``);
5. print the best trial, write it as ``configs/experiment/<study>_best.yaml``, draw the history and importances.

Exactly ``n_trials`` finished trials, however many workers: a worker starts a trial only while finished plus
running trials are fewer than ``n_trials``, and a trial whose number ranks past ``n_trials`` among the
non-failed ones (two workers asked in the same instant) is failed as surplus before it trains. Failed trials
(a crash, a killed worker) do not count, so the survivors replace them; ``max_failed_trials`` bounds that.
"""

from __future__ import annotations

import importlib
import math
import multiprocessing
import os
import re
import socket
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, ListConfig, OmegaConf
from optuna.trial import TrialState
from sqlalchemy.exc import SQLAlchemyError

from cardio import config, provenance
from cardio.build import build_logger, build_runner, save_config
from cardio.finite import NonFiniteError
from cardio.rundir import log_to, write_final
from cardio.sweep.pruning import SeedGroup, TrialReporter, aggregate
from cardio.sweep.settings import CONFIG_DIR, SweepConfig, SweepConfigError
from cardio.sweep.space import Param, parse_space
from cardio.validate import validate

if TYPE_CHECKING:
    from cardio.loggers.base import Logger
    from cardio.runner import Runner

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
PENDING = (TrialState.RUNNING, TrialState.WAITING)
PRUNERS = {
    "median": optuna.pruners.MedianPruner,
    "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
    "hyperband": optuna.pruners.HyperbandPruner,
    "none": optuna.pruners.NopPruner,
}
SAMPLERS = {
    "tpe": optuna.samplers.TPESampler,
    "random": optuna.samplers.RandomSampler,
    "cmaes": optuna.samplers.CmaEsSampler,
}
SKIPPED_KEYS = ("seed", "seeds", "run_dir")
"""Overrides a trial sets itself, never part of the searched or exported configuration."""


@contextmanager
def trial_outcome(write: Callable[[str, str | None], None]) -> Iterator[None]:
    """Run a trial's training inside; however it ends, ``write(status, reason)`` books it (``final.json``):
    ``COMPLETED``; ``PRUNED`` by a pruner, or by a non-finite guard (``FloatingPointError``: diverged, pruned like
    a NaN loss); else ``FAILED`` with the exception as the reason. The exception still propagates: Optuna books the
    trial's own state from it."""
    status, reason = "FAILED", None
    try:
        yield
        status = "COMPLETED"
    except optuna.TrialPruned as exc:
        status, reason = "PRUNED", str(exc)
        raise
    except FloatingPointError as exc:
        status, reason = "PRUNED", f"diverged: {exc}"
        raise
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        write(status, reason)


@contextmanager
def closing(loggers: list[Logger], runners: list[Runner]) -> Iterator[None]:
    """Close every logger, then every runner's envs, that a trial built by the time it ends: also when a build
    failed half-way (a later seed's runner, or the runner after its logger), so no trial leaves a sink open."""
    try:
        yield
    finally:
        for logger in loggers:
            logger.close()
        for runner in runners:
            runner.close()


class SurplusTrialError(RuntimeError):
    """A trial asked for after the study already had ``n_trials`` trials (two workers asked at once)."""


@dataclass
class Sweep:
    """Everything a worker process needs (picklable): settings, the trials' base overrides, the config dir."""

    settings: SweepConfig
    """The sweep file merged with the command line."""
    overrides: list[str]
    """Overrides every trial composes with: command line (minus sweep words), then ``settings.overrides``."""
    config_dir: str = str(CONFIG_DIR)
    """The ``configs/`` folder holding ``train.yaml``."""

    @property
    def space(self) -> dict[str, Param]:
        return parse_space(self.settings.params)

    @property
    def trial_root(self) -> Path:
        return Path(self.settings.output_dir) / str(self.settings.study_name)


def compose_train(config_dir: str | Path, overrides: list[str], hydra_node: bool = False) -> DictConfig:
    """``train.yaml`` composed with ``overrides`` and the zoo overlay of its env id, as ``scripts/train.py`` would
    see it (:func:`cardio.config.compose_train`)."""
    return config.compose_train(config_dir, overrides, hydra_node=hydra_node)


# -------------------------------------------------------------------------------------------------- study
def make_storage(settings: SweepConfig) -> optuna.storages.RDBStorage:
    """The study's database with heartbeats on, so a trial whose worker was killed is marked failed."""
    url = settings.storage_url
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
        engine_kwargs["connect_args"] = {"timeout": 120}  # wait for the other workers' writes, do not fail
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=settings.heartbeat_interval,
            grace_period=settings.grace_period or 2 * settings.heartbeat_interval,
        )


def make_pruner(settings: SweepConfig) -> optuna.pruners.BasePruner:
    """``settings.pruner`` by name (or import path of any Optuna pruner class) with ``settings.pruner_args``."""
    if settings.pruner in PRUNERS:
        cls = PRUNERS[settings.pruner]
    elif "." in settings.pruner:
        module, _, name = settings.pruner.rpartition(".")
        cls = getattr(importlib.import_module(module), name)
    else:
        raise SweepConfigError(
            f"sweep.pruner={settings.pruner!r} is unknown; choose one of {', '.join(PRUNERS)} "
            "or give a class path such as optuna.pruners.PatientPruner"
        )
    try:
        return cls(**settings.pruner_args)
    except TypeError as exc:
        raise SweepConfigError(f"sweep.pruner_args={settings.pruner_args} do not fit {settings.pruner}: {exc}") from exc


def make_sampler(settings: SweepConfig, seed_offset: int = 0) -> optuna.samplers.BaseSampler:
    """``settings.sampler`` by name, seeded with ``sampler_seed + seed_offset`` (distinct per worker)."""
    if settings.sampler not in SAMPLERS:
        raise SweepConfigError(f"sweep.sampler={settings.sampler!r} is unknown; choose one of {', '.join(SAMPLERS)}")
    seed = None if settings.sampler_seed is None else settings.sampler_seed + seed_offset
    return SAMPLERS[settings.sampler](seed=seed)


def open_study(settings: SweepConfig, seed_offset: int = 0, attempts: int = 5) -> optuna.Study:
    """Create the study, or load it when it exists (that is how a re-run resumes).

    Workers started at the same moment on a fresh database race to create its tables and the study; the
    loser sees an integrity or "already exists" error and simply tries again after a short pause.
    """
    for attempt in range(attempts):
        try:
            return optuna.create_study(
                study_name=settings.study_name,
                storage=make_storage(settings),
                sampler=make_sampler(settings, seed_offset),
                pruner=make_pruner(settings),
                direction=optuna.study.StudyDirection[settings.direction.upper()],
                load_if_exists=True,
            )
        except (SQLAlchemyError, optuna.exceptions.DuplicatedStudyError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.5 + attempt)
    raise AssertionError("unreachable")


def count_states(study: optuna.Study) -> Counter[TrialState]:
    return Counter(t.state for t in study.get_trials(deepcopy=False))


# -------------------------------------------------------------------------------------------------- one trial
def trial_seeds(settings: SweepConfig, cfg: DictConfig) -> list[int]:
    """The seeds a trial trains: a ``seeds=[...]`` train override (all together in one process), else
    ``sweep.seeds`` (one after another).

    Raises:
        SweepConfigError: both are given and differ.
    """
    if cfg.get("seeds") is None:
        return list(settings.seeds)
    together = [int(s) for s in cfg.seeds]
    if settings.seeds not in ([0], together):
        raise SweepConfigError(
            f"seeds={together} (trained together) and sweep.seeds={settings.seeds} (one after another) disagree; "
            f"give one of them"
        )
    return together


class Objective:
    """Trains one trial (once per seed) and returns its value; see the module docstring.

    Args:
        sweep: settings and base overrides.
        study: the study the trial belongs to (read for the surplus check).
    """

    def __init__(self, sweep: Sweep, study: optuna.Study) -> None:
        self.sweep = sweep
        self.settings = sweep.settings
        self.study = study
        self.space = sweep.space

    def __call__(self, trial: optuna.Trial) -> float:
        try:
            return self._run(trial)
        except optuna.TrialPruned:
            raise
        except Exception as exc:  # the trial fails, the study goes on; keep the reason next to the trial
            trial.set_user_attr("fail_reason", f"{type(exc).__name__}: {exc}"[:2000])
            raise

    def _run(self, trial: optuna.Trial) -> float:
        self._refuse_surplus(trial)
        overrides = self.sweep.overrides + [p.override(p.suggest(trial)) for p in self.space.values()]
        trial.set_user_attr("overrides", overrides)
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        if not any(o.lstrip("+").startswith("logger=") for o in overrides):
            overrides = [*overrides, "logger=csv"]  # no console tables from many parallel trials
        trial_dir = self.sweep.trial_root / f"trial_{trial.number:04d}"
        together = compose_train(self.sweep.config_dir, [*overrides, f"run_dir='{trial_dir}'"])
        seeds = trial_seeds(self.settings, together)
        try:
            if together.get("seeds") is not None:  # all seeds in this process, batched (cardio/multiseed.py)
                values = self._train_together(trial, validate(together), overrides)
            else:
                values = []
                for i, seed in enumerate(seeds):
                    run_overrides = [*overrides, f"seed={seed}", f"run_dir='{trial_dir / f'seed_{seed}'}'"]
                    cfg = validate(compose_train(self.sweep.config_dir, run_overrides))
                    offset = i * int(cfg.runner.total_steps)
                    values.append(self._train(trial, cfg, offset, run_overrides))
        except NonFiniteError as exc:  # the runner's own guard: diverged, so pruned like a NaN loss
            trial.set_user_attr("pruned_reason", f"diverged: {exc}")
            raise optuna.TrialPruned(str(exc)) from exc
        for seed, value in zip(seeds, values, strict=True):
            trial.set_user_attr(f"value_seed_{seed}", value)
        value = aggregate(values, self.settings.seed_aggregate)
        if not math.isfinite(value):
            trial.set_user_attr("pruned_reason", f"diverged: objective {value} over seeds {seeds}")
            raise optuna.TrialPruned(f"objective {value}")
        return value

    def _train_together(self, trial: optuna.Trial, cfg: DictConfig, overrides: list[str]) -> list[float]:
        """All seeds of ``cfg.seeds`` in one process, each in ``<trial dir>/seed_<s>/`` laid out as a
        single-seed trial's; returns each seed's objective value."""
        from cardio.multiseed import MultiSeedRunner, seed_configs

        configs = seed_configs(cfg)
        group = SeedGroup(
            trial, self.settings.metric, self.settings.objective, len(configs), self.settings.seed_aggregate
        )
        loggers: list[Logger] = []
        runners: list[Runner] = []

        def write(status: str, reason: str | None) -> None:
            for one, reporter in zip(configs, group.seeds, strict=True):
                write_final(one.run_dir, [*overrides, f"seed={one.seed}"], status, reporter.value(), reason)

        with log_to(cfg.run_dir), trial_outcome(write), closing(loggers, runners):
            for one, reporter in zip(configs, group.seeds, strict=True):
                save_config(one, one.run_dir)
                provenance.record_run(one.run_dir, str(one.get("device", "cpu")))
                loggers.append(build_logger(one))
                loggers[-1].sinks["trial"] = reporter  # sees train/* metrics: a NaN loss prunes the trial
                runners.append(build_runner(one, logger=loggers[-1], callbacks=[reporter]))
            MultiSeedRunner(runners, [int(one.seed) for one in configs]).run()
        return [reporter.value() for reporter in group.seeds]

    def _train(self, trial: optuna.Trial, cfg: DictConfig, step_offset: int, overrides: list[str]) -> float:
        """One seed of a trial in its own run dir, laid out as ``scripts/train.py`` lays out its own
        (:mod:`cardio.rundir`): ``config.yaml`` first, ``final.json`` however the run ends."""
        run_dir = Path(str(cfg.run_dir))
        save_config(cfg, run_dir)
        provenance.record_run(run_dir, str(cfg.get("device", "cpu")))
        reporter = TrialReporter(trial, self.settings.metric, self.settings.objective, step_offset)

        def write(status: str, reason: str | None) -> None:
            write_final(run_dir, overrides, status, reporter.value(), reason)

        loggers: list[Logger] = []
        runners: list[Runner] = []
        with log_to(run_dir), trial_outcome(write), closing(loggers, runners):
            loggers.append(build_logger(cfg))
            loggers[0].sinks["trial"] = reporter  # sees train/* metrics: a NaN loss prunes the trial
            runners.append(build_runner(cfg, logger=loggers[0], callbacks=[reporter]))
            runners[0].run()
        return reporter.value()

    def _refuse_surplus(self, trial: optuna.Trial) -> None:
        ahead = [
            t for t in self.study.get_trials(deepcopy=False) if t.number < trial.number and t.state != TrialState.FAIL
        ]
        if len(ahead) >= self.settings.n_trials:
            raise SurplusTrialError(
                f"trial {trial.number} is surplus: {len(ahead)} trials ahead of it already make "
                f"sweep.n_trials={self.settings.n_trials} (another worker asked at the same instant)"
            )


# -------------------------------------------------------------------------------------------------- workers
def work(sweep: Sweep, worker_index: int = 0) -> None:
    """One worker: run trials until the study holds ``n_trials`` finished ones (see the module docstring)."""
    optuna.logging.set_verbosity(optuna.logging.INFO)
    s = sweep.settings
    study = open_study(s)
    # Distinct per worker and per resume, so no two samplers replay the same random start-up draws.
    study.sampler = make_sampler(s, seed_offset=1000 * worker_index + len(study.get_trials(deepcopy=False)))
    objective = Objective(sweep, study)
    deadline = time.monotonic() + s.timeout if s.timeout is not None else math.inf
    max_failed = s.max_failed_trials if s.max_failed_trials is not None else s.n_trials
    poll = max(0.5, s.heartbeat_interval / 2)
    while True:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)  # trials of killed workers -> FAIL
        states = count_states(study)
        finished = sum(states[st] for st in FINISHED)
        pending = sum(states[st] for st in PENDING)
        if finished >= s.n_trials:
            return
        if states[TrialState.FAIL] >= max_failed:
            warnings.warn(
                f"study {s.study_name}: {states[TrialState.FAIL]} failed trials reach sweep.max_failed_trials="
                f"{max_failed}; this worker stops (the failures' reasons are in the log and the storage)",
                stacklevel=2,
            )
            return
        if time.monotonic() >= deadline:
            return
        if finished + pending >= s.n_trials:  # the last trials run elsewhere; stay in case a worker dies
            time.sleep(poll)
            continue
        study.optimize(objective, n_trials=1, catch=(Exception,), gc_after_trial=False)


def _work_in_child(sweep: Sweep, worker_index: int) -> None:
    # torch's intra-op threads are set per trial by cardio.build (``torch_threads``), only when the agent uses it.
    work(sweep, worker_index)


def run_workers(sweep: Sweep) -> None:
    """``n_workers`` processes (spawned: no forked torch or database state) on the study, or this one."""
    n = sweep.settings.n_workers
    if n == 1:
        work(sweep, 0)
        return
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_work_in_child, args=(sweep, i), name=f"sweep-worker-{i}") for i in range(n)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    bad = {p.name: p.exitcode for p in procs if p.exitcode != 0}
    if bad:
        warnings.warn(f"sweep workers exited with errors: {bad}; the study keeps what they finished", stacklevel=2)


# -------------------------------------------------------------------------------------------------- the sweep
def check_space(sweep: Sweep) -> dict[str, str | None]:
    """Compose the base config once; every searched key must exist. Returns the config group choices."""
    cfg = validate(compose_train(sweep.config_dir, sweep.overrides, hydra_node=True))  # one line if the base is bad
    choices: dict[str, str | None] = dict(cfg.hydra.runtime.choices)
    for key in sweep.space:
        if key in choices:
            continue
        if OmegaConf.select(cfg, key, default=KeyError) is KeyError:
            parent = key.rpartition(".")[0]
            node = OmegaConf.select(cfg, parent) if parent else cfg
            have = sorted(str(k) for k in node.keys()) if isinstance(node, DictConfig) else []
            raise SweepConfigError(
                f"sweep.params.{key}: no such key in the composed config ({' '.join(sweep.overrides) or 'defaults'});"
                f" keys under {parent or 'the root'}: {', '.join(map(str, have))}"
            )
    return choices


def enqueue_base(study: optuna.Study, sweep: Sweep, choices: dict[str, str | None]) -> None:
    """Queue the base config's own values as the first trial (params outside the space are left to the sampler)."""
    cfg = compose_train(sweep.config_dir, sweep.overrides)
    params: dict[str, Any] = {}
    for key, p in sweep.space.items():
        value = choices[key] if key in choices else OmegaConf.select(cfg, key)
        if isinstance(value, DictConfig | ListConfig):
            value = OmegaConf.to_container(value)
        if p.contains(value):
            params[key] = p.encode(value)
    study.enqueue_trial(params, user_attrs={"baseline": True}, skip_if_exists=True)


def run_sweep(sweep: Sweep) -> optuna.Study:
    """Steps 1-5 of the module docstring; returns the study."""
    s = sweep.settings
    choices = check_space(sweep)
    study = open_study(s)
    if s.enqueue_base and not study.get_trials(deepcopy=False):
        enqueue_base(study, sweep, choices)
    done = sum(count_states(study)[st] for st in FINISHED)
    print(
        f"study {s.study_name!r} in {s.storage_url}: {done} of {s.n_trials} trials finished; "
        f"{s.n_workers} worker(s), seeds {trial_seeds(s, compose_train(sweep.config_dir, sweep.overrides))} "
        f"({s.seed_aggregate}), pruner {s.pruner}, objective {s.objective} {s.metric}"
    )
    os.environ.setdefault("WANDB_RUN_GROUP", str(s.study_name))
    run_workers(sweep)
    report(study, sweep, choices)
    return study


def report(study: optuna.Study, sweep: Sweep, choices: dict[str, str | None]) -> None:
    """Print the outcome, export the best trial as an experiment file, draw the plots."""
    states = count_states(study)
    print(
        f"study {study.study_name!r}: {states[TrialState.COMPLETE]} complete, {states[TrialState.PRUNED]} pruned, "
        f"{states[TrialState.FAIL]} failed"
    )
    for line in stop_reasons(study):
        print(f"  {line}")
    if not states[TrialState.COMPLETE]:
        print("no trial completed: no best trial, no config exported")
        return
    best = study.best_trial
    print(f"best trial {best.number}: {sweep.settings.metric} ({sweep.settings.objective}) = {best.value:.4g}")
    for key, value in best.params.items():
        print(f"  {key} = {sweep.space[key].decode(value) if key in sweep.space else value}")
    path = export_best(study, sweep, choices)
    print(f"best config: {path}  ->  make train experiment={path.stem}")
    if sweep.settings.plots:
        for png in plot_study(study, sweep.trial_root):
            print(f"plot: {png}")


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


def experiment_text(best: optuna.trial.FrozenTrial, sweep: Sweep, choices: dict[str, str | None]) -> str:
    """The best trial's overrides as a ``# @package _global_`` experiment file (groups become defaults)."""
    s = sweep.settings
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
        f"# `make train experiment={s.study_name}_best` reproduces it (seed {seeds[0]}: add seed={seeds[0]}).",
    ]
    body = ["defaults:", *groups] if groups else []
    return "\n".join(header + body) + "\n" + (OmegaConf.to_yaml(values) if len(values) else "")


def export_best(study: optuna.Study, sweep: Sweep, choices: dict[str, str | None]) -> Path:
    """Write ``<export_dir>/<study_name>_best.yaml``; returns its path."""
    path = Path(sweep.settings.export_dir) / f"{sweep.settings.study_name}_best.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(experiment_text(study.best_trial, sweep, choices))
    return path


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

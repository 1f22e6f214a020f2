"""The Optuna sweep driver: one study, any number of worker processes and machines, the same Runner per trial.

What a sweep does (``make sweep agent=dqn env=CartPole sweep=dqn_cartpole``, see docs/sweeps.md):

1. compose ``train.yaml`` with the command-line overrides once and check that every searched key exists;
2. open (or create, or resume) the study in its storage: SQLite file by default, any SQLAlchemy URL or a journal
   file otherwise (:mod:`cardio.sweep.storage`);
3. run ``n_workers`` workers (processes here, or a SLURM job array: :mod:`cardio.sweep.slurm`); each loops: fail
   trials whose worker died (heartbeat) and ask their parameters again, stop when the study holds ``n_trials``
   finished trials, else run one trial;
4. a trial samples the search space, composes ``train.yaml`` with the overrides plus the sampled values
   (``hydra.compose``), builds through :mod:`cardio.build`, and trains once per seed of ``sweep.seeds``, or all
   the seeds of a ``seeds=[...]`` override together in one process (cardio/multiseed.py); :class:`TrialReporter`
   reports every evaluation and prunes; the trial's value is the mean or IQM over seeds (``sweep.seed_aggregate``);
5. print the best trial, write it as ``configs/experiment/<study>_best.yaml`` (or beside a file another study
   wrote or git tracks: :mod:`cardio.sweep.export`), draw the history and importances.

Exactly ``n_trials`` finished trials, however many workers: a worker starts a trial only while finished plus
running trials are fewer than ``n_trials``, and a trial whose number ranks past ``n_trials`` among the
non-failed ones (two workers asked in the same instant) is failed as surplus before it trains. Failed trials
(a crash, a killed worker) do not count, so the survivors replace them; ``max_failed_trials`` bounds that. A
trial whose worker stopped (a signal, or no heartbeat) is asked again with the same parameters, so it is neither
lost nor counted twice.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import signal
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
from omegaconf import DictConfig, ListConfig, OmegaConf
from optuna.trial import TrialState

from cardio import checkpoint, config, provenance
from cardio.build import build_logger, build_runner, save_config
from cardio.cluster.requeue import this_job
from cardio.finite import NonFiniteError
from cardio.rundir import log_to, write_final
from cardio.sweep.export import report
from cardio.sweep.pruning import SeedGroup, TrialReporter, aggregate
from cardio.sweep.settings import CONFIG_DIR, SweepConfig, SweepConfigError
from cardio.sweep.space import Param, parse_space
from cardio.sweep.storage import ask_again
from cardio.sweep.study import make_sampler, open_study
from cardio.validate import validate

if TYPE_CHECKING:
    from cardio.loggers.base import Logger
    from cardio.runner import Runner

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


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
        stop: the worker's :class:`~cardio.checkpoint.StopFlag`: a signal that came between trials (or while one
            was being built) stops the next run before it trains.
    """

    def __init__(self, sweep: Sweep, study: optuna.Study, stop: checkpoint.StopFlag | None = None) -> None:
        self.sweep = sweep
        self.settings = sweep.settings
        self.study = study
        self.space = sweep.space
        self.stop = stop
        self.stopped: int | None = None
        """The signal that stopped the last trial (SIGTERM: preempted, ``scancel``...), else ``None``."""
        self.trial_id: int | None = None
        """The storage id of the last trial started."""

    def __call__(self, trial: optuna.Trial) -> float:
        self.trial_id, self.stopped = trial._trial_id, None
        try:
            return self._run(trial)
        except optuna.TrialPruned:
            raise
        except checkpoint.Interrupted as exc:  # fails; the worker asks its parameters again and stops
            self.stopped = exc.signum
            why = f"its worker was stopped by {signal.Signals(exc.signum).name} (preempted, cancelled or requeued)"
            trial.set_user_attr("fail_reason", why)
            raise
        except Exception as exc:  # the trial fails, the study goes on; keep the reason next to the trial
            trial.set_user_attr("fail_reason", f"{type(exc).__name__}: {exc}"[:2000])
            raise

    def _run(self, trial: optuna.Trial) -> float:
        self._refuse_surplus(trial)
        overrides = self.sweep.overrides + [p.override(p.suggest(trial)) for p in self.space.values()]
        trial.set_user_attr("overrides", overrides)
        trial.set_user_attr("worker", worker_name())
        if not any(o.lstrip("+").startswith("logger=") for o in overrides):
            overrides = [*overrides, "logger=csv"]  # no console tables from many parallel trials
        trial_dir = self.sweep.trial_root / f"trial_{trial.number:04d}"
        together = compose_train(self.sweep.config_dir, [*overrides, f"run_dir='{trial_dir}'"])
        seeds = trial_seeds(self.settings, together)
        if together.get("seeds") is not None:  # all seeds in this process, batched (cardio/multiseed.py)
            from cardio.multiseed import seed_configs

            runs = [(one, [*overrides, f"seed={one.seed}"]) for one in seed_configs(validate(together))]
        else:  # one after another, each composed as `make train seed=<s> run_dir=<trial dir>/seed_<s>` would
            words = [[*overrides, f"seed={seed}", f"run_dir='{trial_dir / f'seed_{seed}'}'"] for seed in seeds]
            runs = [(validate(compose_train(self.sweep.config_dir, w)), w) for w in words]
        try:
            values = self._train(trial, runs, trial_dir if together.get("seeds") is not None else None)
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

    def _train(self, trial: optuna.Trial, runs: list[tuple[DictConfig, list[str]]], together: Path | None) -> list:
        """Train each seed's config in its own run dir, laid out as ``scripts/train.py`` lays out its own
        (:mod:`cardio.rundir`: ``config.yaml`` first, ``final.json`` however the run ends): all together in one
        :class:`~cardio.multiseed.MultiSeedRunner` logging to ``together`` (the trial dir), or one after another,
        seed ``i`` reporting its evaluations at ``i * total_steps + step``. Returns each seed's value."""
        s = self.settings
        if together is not None:
            reporters = SeedGroup(trial, s.metric, s.objective, len(runs), s.seed_aggregate).seeds
            batches = [list(zip(runs, reporters, strict=True))]
        else:
            reporters = [
                TrialReporter(trial, s.metric, s.objective, i * int(cfg.runner.total_steps))
                for i, (cfg, _) in enumerate(runs)
            ]
            batches = [[pair] for pair in zip(runs, reporters, strict=True)]
        for batch in batches:
            loggers: list[Logger] = []
            runners: list[Runner] = []

            def write(status: str, reason: str | None, batch: list = batch) -> None:
                for (one, words), reporter in batch:
                    write_final(one.run_dir, words, status, reporter.value(), reason)

            with log_to(together or batch[0][0][0].run_dir), trial_outcome(write), closing(loggers, runners):
                for (one, _), reporter in batch:
                    save_config(one, one.run_dir)
                    provenance.record_run(one.run_dir, str(one.get("device", "cpu")))
                    loggers.append(build_logger(one))
                    loggers[-1].sinks["trial"] = reporter  # sees train/* metrics: a NaN loss prunes the trial
                    runners.append(build_runner(one, logger=loggers[-1], callbacks=[reporter]))
                if self.stop is not None and self.stop.signum is not None:  # came while building: train nothing
                    raise checkpoint.Interrupted(self.stop.signum, None)
                if together is None:
                    runners[0].run()
                else:
                    from cardio.multiseed import MultiSeedRunner

                    MultiSeedRunner(runners, [int(one.seed) for (one, _), _ in batch]).run()
        return [reporter.value() for reporter in reporters]

    def _refuse_surplus(self, trial: optuna.Trial) -> None:
        ahead = [
            t for t in self.study.get_trials(deepcopy=False) if t.number < trial.number and t.state != TrialState.FAIL
        ]
        if len(ahead) >= self.settings.n_trials:
            raise SurplusTrialError(
                f"trial {trial.number} is surplus: {len(ahead)} trials ahead of it already make "
                f"sweep.n_trials={self.settings.n_trials} (another worker asked at the same instant)"
            )


def worker_name() -> str:
    """``<host>:<pid>``, then `` slurm:<job id>`` in a SLURM job: who ran a trial (its ``worker`` attribute)."""
    job = this_job()
    return f"{socket.gethostname()}:{os.getpid()}" + (f" slurm:{job.job_id}" if job is not None else "")


# -------------------------------------------------------------------------------------------------- workers
def work(sweep: Sweep, worker_index: int = 0) -> int | None:
    """One worker: run trials until the study holds ``n_trials`` finished ones (see the module docstring).

    A signal (:data:`cardio.checkpoint.STOP_SIGNALS`: SLURM's preemption, ``scancel``, the time-limit signal)
    ends the worker: inside a trial the run stops at its next step boundary, the trial fails and its parameters
    are queued again (``sweep.max_retries``), so a requeued worker or another one trains them and the trial
    counts once; between trials no new one starts. Returns that signal (``None`` when the study is done).
    """
    optuna.logging.set_verbosity(optuna.logging.INFO)
    s = sweep.settings
    study = open_study(s)
    # Distinct per worker and per resume, so no two samplers replay the same random start-up draws.
    study.sampler = make_sampler(s, seed_offset=1000 * worker_index + len(study.get_trials(deepcopy=False)))
    deadline = time.monotonic() + s.timeout if s.timeout is not None else math.inf
    max_failed = s.max_failed_trials if s.max_failed_trials is not None else s.n_trials
    poll = max(0.5, s.heartbeat_interval / 2)
    with checkpoint.stop_on_signal() as stop:
        objective = Objective(sweep, study, stop)
        while stop.signum is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(study)  # trials of killed workers -> FAIL, asked again
            states = count_states(study)
            finished = sum(states[st] for st in FINISHED)
            if finished >= s.n_trials or time.monotonic() >= deadline:
                return None
            if states[TrialState.FAIL] >= max_failed:
                warnings.warn(
                    f"study {s.study_name}: {states[TrialState.FAIL]} failed trials reach sweep.max_failed_trials="
                    f"{max_failed}; this worker stops (the failures' reasons are in the log and the storage)",
                    stacklevel=2,
                )
                return None
            # the last trials run elsewhere: stay in case a worker dies (a queued trial, WAITING, is taken next)
            if finished + states[TrialState.RUNNING] >= s.n_trials:
                time.sleep(poll)
                continue
            study.optimize(objective, n_trials=1, catch=(Exception,), gc_after_trial=False)
            if objective.stopped is not None and objective.trial_id is not None:
                ask_again(study, study._storage.get_trial(objective.trial_id), s.max_retries)
                return objective.stopped
    return stop.signum


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


def run_sweep(sweep: Sweep, workers: Callable[[Sweep], None] = run_workers) -> optuna.Study:
    """Steps 1-5 of the module docstring; returns the study.

    Args:
        sweep: what to run.
        workers: runs the workers until they end: :func:`run_workers` (processes on this machine), or
            :func:`cardio.sweep.slurm.slurm_workers` (a SLURM job array).
    """
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
    workers(sweep)
    report(study, s, sweep.space, choices, sweep.trial_root)
    return study

"""Where a study lives, how a dead worker's trial is found, and how such a trial is asked again.

``sweep.storage`` picks the storage (default: the SQLite file ``<output_dir>/<study>.db``; on SLURM without a
storage, a journal file, :func:`cardio.sweep.slurm.cluster_storage`):

* ``sqlite:///<path>``, ``postgresql://...`` (any SQLAlchemy URL): Optuna's ``RDBStorage``, with heartbeats.
* ``journal:///<path>`` (a relative path; ``journal:////abs/path`` for an absolute one, as SQLite URLs write it):
  Optuna's ``JournalStorage`` on one append-only file, locked by ``open(O_CREAT | O_EXCL)``, which holds on the
  shared (NFS) file systems of clusters where SQLite's ``fcntl`` locks do not. Optuna gives a journal no
  heartbeats, so :class:`HeartbeatJournalStorage` adds them as a system attribute of each running trial.

Every storage has heartbeats: a running trial records one every ``heartbeat_interval`` seconds; a trial whose last
one is ``grace_period`` seconds old belongs to a worker that died (killed, its node lost) and any worker marks it
``FAIL``. A failed trial whose worker did not finish it (that one, or one stopped by a signal: preempted,
``scancel``) is asked again with the same parameters (:func:`ask_again`, up to ``sweep.max_retries`` times), so
the sampler's pick is not lost, and counts once, when it finishes.
"""

from __future__ import annotations

import inspect
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.exc import SQLAlchemyError

JOURNAL = "journal:///"
"""Prefix of a journal-file storage URL; the rest is the file's path."""

HEARTBEAT_ATTR = "cardio:heartbeat"
"""System attribute of a running trial in a journal: the time (``time.time()``) of its last heartbeat."""

RETRY_OF = "retry_of"
"""User attribute of a trial asked again: the number of the failed trial whose parameters it runs."""


class HeartbeatJournalStorage(optuna.storages.JournalStorage, BaseHeartbeat):
    """``JournalStorage`` with Optuna's heartbeat protocol: stale running trials are found, and failed, by any
    worker's ``optuna.storages.fail_stale_trials`` exactly as with an ``RDBStorage``.

    Args:
        path: the journal file (created if missing; its folder too).
        heartbeat_interval: seconds between a running trial's heartbeats.
        grace_period: seconds without a heartbeat after which a running trial is stale.
        stale_trial_callback: called with each trial this process failed as stale (e.g. :func:`ask_again`).
    """

    def __init__(
        self,
        path: str | Path,
        heartbeat_interval: int,
        grace_period: int,
        stale_trial_callback: Callable[[optuna.Study, FrozenTrial], None] | None = None,
    ) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        super().__init__(JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path))))
        self.heartbeat_interval = heartbeat_interval
        self.grace_period = grace_period
        self.stale_trial_callback = stale_trial_callback

    def record_heartbeat(self, trial_id: int) -> None:
        try:
            self.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, time.time())
        except (optuna.exceptions.UpdateFinishedTrialError, KeyError):
            pass  # failed as stale by another worker meanwhile: the trial's own end reports it

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        now = time.time()
        stale = []
        for t in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
            started = t.datetime_start.timestamp() if t.datetime_start is not None else now
            last = max(float(t.system_attrs.get(HEARTBEAT_ATTR, started)), started)
            if now - last > self.grace_period:
                stale.append(t._trial_id)
        return stale

    def get_heartbeat_interval(self) -> int | None:
        return self.heartbeat_interval

    def get_heartbeat_stale_trial_callback(self) -> Callable[[optuna.Study, FrozenTrial], None] | None:
        return self.stale_trial_callback

    def get_failed_trial_callback(self) -> Callable[[optuna.Study, FrozenTrial], None] | None:
        return self.stale_trial_callback  # Optuna < 4.9 asks under this name


def ask_again(study: optuna.Study, trial: FrozenTrial, max_retries: int) -> bool:
    """Queue the parameters of a trial that failed because its worker stopped (killed, preempted) as a new trial,
    unless they were asked ``max_retries`` times already or another worker queued them; whether it did."""
    retries = int(trial.user_attrs.get("retries", 0))
    if retries >= max_retries or not trial.params:
        return False
    if any(t.user_attrs.get(RETRY_OF) == trial.number for t in study.get_trials(deepcopy=False)):
        return False
    study.enqueue_trial(trial.params, user_attrs={RETRY_OF: trial.number, "retries": retries + 1})
    print(f"trial {trial.number} ended with its worker: its parameters are asked again ({retries + 1}/{max_retries})")
    return True


def asking_again(max_retries: int) -> Callable[[optuna.Study, FrozenTrial], None]:
    """The stale-trial callback of a study's storage: :func:`ask_again` with ``max_retries``."""

    def callback(study: optuna.Study, trial: FrozenTrial) -> None:
        ask_again(study, trial, max_retries)

    return callback


def make_storage(
    url: str,
    heartbeat_interval: int,
    grace_period: int,
    stale_trial_callback: Callable[[optuna.Study, FrozenTrial], None] | None = None,
) -> BaseStorage:
    """The storage ``url`` names (see the module docstring), heartbeats on.

    Args:
        url: ``sqlite:///...``, ``postgresql://...``, any SQLAlchemy URL, or ``journal:///<path>``.
        heartbeat_interval: seconds between a running trial's heartbeats.
        grace_period: seconds without a heartbeat after which another worker fails the trial.
        stale_trial_callback: called with each trial this process failed as stale.
    """
    if url.startswith(JOURNAL):
        return HeartbeatJournalStorage(url[len(JOURNAL) :], heartbeat_interval, grace_period, stale_trial_callback)
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
        engine_kwargs["connect_args"] = {"timeout": 120}  # wait for the other workers' writes, do not fail
    callback_key = "heartbeat_stale_trial_callback"  # Optuna >= 4.9; failed_trial_callback before
    if callback_key not in inspect.signature(optuna.storages.RDBStorage).parameters:
        callback_key = "failed_trial_callback"
    callback: dict[str, Any] = {callback_key: stale_trial_callback}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=heartbeat_interval,
            grace_period=grace_period,
            **callback,
        )


def create_or_load(attempts: int = 5, **kwargs: Any) -> optuna.Study:
    """``optuna.create_study(load_if_exists=True, **kwargs)``, tried again when workers started at the same
    moment on a fresh database race to create its tables and the study (the loser sees an integrity or
    "already exists" error)."""
    for attempt in range(attempts):
        try:
            return optuna.create_study(load_if_exists=True, **kwargs)
        except (SQLAlchemyError, optuna.exceptions.DuplicatedStudyError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.5 + attempt)
    raise AssertionError("unreachable")

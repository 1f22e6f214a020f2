"""Optuna sweep workers as one SLURM job array: ``make sweep n_workers=4 hydra/launcher=slurm``.

The launcher words of a multirun (``hydra/launcher=slurm``, ``hydra.launcher.partition=gpu``...,
``configs/hydra/launcher/slurm.yaml``) work for a sweep too. Then:

1. the launcher settings are checked against the cluster, and the trials' buffer against ``mem_gb``, before
   anything is submitted (:mod:`cardio.cluster.checks`: one ``error:`` line and exit 2 on a refusal);
2. without a ``storage=`` the study lives in Optuna's journal file ``<output_dir>/<study>.journal``, which
   concurrent workers on a shared (NFS) file system may append to safely (:mod:`cardio.sweep.storage`);
   ``storage=postgresql://...`` works as on one machine;
3. ``n_workers`` tasks of one array each run :func:`cardio.sweep.driver.work` on the study; this process waits
   for them (:func:`cardio.cluster.jobs.wait`), reports every worker that ended without finishing (job id,
   state, log), then prints and exports the best trial as a local sweep does.

A worker that SLURM preempts, cancels (``scancel``) or requeues gets SIGTERM: the trial it runs stops at its next
step boundary, is failed and its parameters asked again (``sweep.max_retries``), so another worker (or the
requeued one) trains them and the trial counts once. On the time-limit signal (``signal_delay_s`` before
``timeout_min``) a worker does the same and then requeues itself (``max_num_timeout`` times at most). A worker
killed outright (no signal, a lost node) stops sending heartbeats; after ``grace_period`` seconds another worker
fails its trial and asks it again.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from cardio.cluster.checks import check_launcher, submitit_parameters
from cardio.cluster.jobs import wait
from cardio.cluster.launcher import TARGET, check_job_memory
from cardio.cluster.requeue import MAX_REQUEUES_VAR, requeue_if_signalled
from cardio.sweep.driver import Sweep, compose_train, work
from cardio.sweep.settings import SweepConfig, SweepConfigError
from cardio.sweep.storage import JOURNAL


def split_launcher(words: Sequence[str]) -> tuple[list[str], list[str]]:
    """``(launcher words, the rest)``: ``hydra/launcher=...`` and ``hydra.launcher.<key>=...`` go to the launcher."""
    launcher: list[str] = []
    rest: list[str] = []
    for word in words:
        key = word.lstrip("+~")
        (launcher if key.startswith(("hydra/launcher=", "hydra.launcher.")) else rest).append(word)
    return launcher, rest


def launcher_params(words: Sequence[str], settings: SweepConfig, config_dir: str | Path) -> dict[str, Any]:
    """The resolved ``hydra.launcher`` node the launcher words compose, its submitit folder under the study's
    trial dir (``<output_dir>/<study>/.submitit/<job id>``).

    Raises:
        SweepConfigError: a launcher other than ``slurm`` (a sweep's workers run here or on SLURM).
    """
    node = compose_train(config_dir, list(words), hydra_node=True).hydra.launcher
    if node.get("_target_") != TARGET:
        chosen = next((w.partition("=")[2] for w in words if w.lstrip("+").startswith("hydra/launcher=")), "?")
        raise SweepConfigError(
            f"hydra/launcher={chosen}: an Optuna sweep runs its workers on this machine (n_workers=N, no launcher) "
            f"or as a SLURM job array (hydra/launcher=slurm)"
        )
    root = Path(settings.output_dir).resolve() / str(settings.study_name)
    overrides = {"submitit_folder": str(root / ".submitit" / "%j"), "name": f"sweep_{settings.study_name}"}
    node = OmegaConf.merge(node, overrides)
    return OmegaConf.to_container(node, resolve=True)  # type: ignore[return-value]


def cluster_storage(settings: SweepConfig) -> SweepConfig:
    """The settings with the storage every worker shares: the one given, else a journal file in ``output_dir``
    (an absolute path: the jobs may start elsewhere)."""
    if settings.storage is None:
        path = Path(settings.output_dir).resolve() / f"{settings.study_name}.journal"
        settings.storage = f"{JOURNAL}{path}"
    elif settings.storage.startswith("sqlite:"):
        warnings.warn(
            f"storage={settings.storage}: SQLite's file locks do not hold on most clusters' shared file systems; "
            f"leave storage unset (a journal file) or give a postgresql:// URL",
            stacklevel=2,
        )
    return settings


def worker_job(sweep: Sweep, index: int) -> None:
    """One array task: :func:`cardio.sweep.driver.work`; stopped by a signal, requeue on SLURM's time-limit
    signal, and exit with ``128 + signal`` (what SLURM records)."""
    signum = work(sweep, index)
    if signum is None:
        return
    how = "running the same `make sweep` command again continues the study"
    line = requeue_if_signalled(128 + signum, how)
    if line is not None:
        print(line, file=sys.stderr, flush=True)
    sys.exit(128 + signum)


def slurm_workers(params: dict[str, Any]) -> Callable[[Sweep], None]:
    """What :func:`cardio.sweep.driver.run_sweep` runs its workers with: check, submit, wait, report."""

    def run(sweep: Sweep) -> None:
        import submitit

        s = sweep.settings
        check_launcher(params)
        if params.get("mem_gb"):
            check_job_memory(compose_train(sweep.config_dir, sweep.overrides), int(params["mem_gb"]))
        timeouts = int(params.get("max_num_timeout") or 0)
        executor = submitit.AutoExecutor(
            cluster="slurm", folder=params["submitit_folder"], slurm_max_num_timeout=timeouts
        )
        executor.update_parameters(**submitit_parameters(params))
        os.environ[MAX_REQUEUES_VAR] = str(timeouts)  # the jobs inherit it (sbatch --export=ALL)
        jobs = executor.map_array(worker_job, [sweep] * s.n_workers, list(range(s.n_workers)))
        array = jobs[0].job_id.split("_")[0]
        folder = Path(params["submitit_folder"]).parent
        print(
            f"submitted {len(jobs)} sweep worker(s) to SLURM as array {array} (partition "
            f"{params.get('partition') or 'default'}); logs: {folder}/{array}/; watch: squeue -j {array}",
            flush=True,
        )
        for outcome in wait(jobs, label=f"sweep workers, array {array}"):
            if not outcome.ok:
                print(f"error: sweep worker {outcome.error}; the study keeps what it finished", file=sys.stderr)

    return run

"""``hydra/launcher=slurm``: each multirun job a task of one SLURM job array, checked first, waited for, reported.

``make multirun seed=0,1,2 hydra/launcher=slurm`` (``configs/hydra/launcher/slurm.yaml``) runs through
``hydra_plugins.cardio_slurm.CardioSlurmLauncher`` (Hydra takes launchers from that package only), which is
hydra-submitit-launcher's SLURM launcher with :func:`launch` instead of its own, for three changes:

1. **Before anything is submitted** the settings are checked against the cluster (:mod:`cardio.cluster.checks`);
   ``scripts/train.py`` does that before Hydra makes the sweep dir (:func:`check_command_line`), and checks every
   job's config there as the job will check it and, with ``mem_gb`` set, its buffer against that memory. A
   refusal is one ``error:`` line and exit code 2.
2. **Jobs survive preemption**: ``CARDIO_SLURM_MAX_REQUEUES`` (``max_num_timeout``) lets a job requeue itself on
   the time-limit signal, and a requeued job continues in its own run dir from its checkpoint
   (:mod:`cardio.cluster.requeue`, called by ``cardio/commands/train.py``).
3. **A job that fails is reported** with its job id, state, exit code and log (:mod:`cardio.cluster.jobs`), its
   ``final.json`` says so, and the multirun still prints its summary; the summary callback then exits with
   status 1 (``cardio/sweep/summary.py``). Hydra's own sweeper would stop at the first failed job instead, before
   any summary, so failed jobs are handed back to it as finished ones without a value.

Each job's run dir is a local job's: ``<hydra.sweep.dir>/<job number>``; submitit's files (the batch script, the
pickled job, ``<id>_0_log.out``/``.err``) go to ``<hydra.sweep.dir>/.submitit/<job id>/``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from omegaconf import DictConfig, OmegaConf, open_dict

from cardio.cluster.checks import check_launcher, submitit_parameters
from cardio.cluster.jobs import Outcome, wait
from cardio.cluster.requeue import MAX_REQUEUES_VAR
from cardio.errors import report_user_errors
from cardio.rundir import FINAL, write_final

if TYPE_CHECKING:
    from cardio.limits import Limit

TARGET = "hydra_plugins.cardio_slurm.CardioSlurmLauncher"
"""The ``_target_`` of ``configs/hydra/launcher/slurm.yaml``."""


def launch(launcher: Any, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[JobReturn]:
    """``CardioSlurmLauncher.launch`` (``hydra_plugins/cardio_slurm``): check, submit one array, wait, report.

    Args:
        launcher: the Hydra launcher (its ``params`` are the ``hydra.launcher`` keys, ``config`` the multirun's).
        job_overrides: each job's overrides.
        initial_job_idx: the first job's number.
    """
    import submitit

    assert launcher.config is not None
    params = dict(launcher.params)
    with report_user_errors():
        check_launcher(params)
    executor = submitit.AutoExecutor(
        cluster="slurm",
        folder=params["submitit_folder"],
        slurm_max_num_timeout=int(params.get("max_num_timeout") or 0),
    )
    executor.update_parameters(**submitit_parameters(params))
    os.environ[MAX_REQUEUES_VAR] = str(int(params.get("max_num_timeout") or 0))  # the jobs inherit it
    sweep_dir = Path(str(launcher.config.hydra.sweep.dir))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    job_params: list[Any] = []
    for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
        print(f"  #{idx} : {' '.join(filter_overrides(overrides))}", flush=True)
        job_params.append((list(overrides), "hydra.sweep.dir", idx, f"job_id_for_{idx}", Singleton.get_state()))
    jobs = executor.map_array(launcher, *zip(*job_params, strict=True))
    array = jobs[0].job_id.split("_")[0]
    print(
        f"submitted {len(jobs)} job(s) to SLURM as array {array} "
        f"(partition {params.get('partition') or 'default'}); logs: {sweep_dir / '.submitit'}/{array}_<n>/",
        flush=True,
    )
    outcomes = wait(jobs, label=f"array {array}")
    return [
        job_return(launcher, list(ov), idx, outcome)
        for (ov, _, idx, _, _), outcome in zip(job_params, outcomes, strict=True)
    ]


def job_return(launcher: Any, overrides: list[str], idx: int, outcome: Outcome) -> JobReturn:
    """The job's own ``JobReturn``, or for a job that failed a finished one without a value (see the module
    docstring), its failure printed and written to its ``final.json``."""
    result = outcome.result
    if outcome.ok and isinstance(result, JobReturn) and result.status == JobStatus.COMPLETED:
        return result
    if outcome.ok and isinstance(result, JobReturn):  # the task raised: Hydra caught it inside the job
        why = f"{type(result._return_value).__name__}: {result._return_value}"
        line = f"SLURM job {outcome.job_id} raised {why}; log: {outcome.log}"
    else:
        line = outcome.error or f"SLURM job {outcome.job_id} returned {result!r}"
    print(f"error: multirun job #{idx} ({' '.join(filter_overrides(overrides))}): {line}", file=sys.stderr)
    job_dir = _job_dir(launcher, overrides, idx)
    if job_dir is not None and not (job_dir / FINAL).is_file():
        state = outcome.state if outcome.state != "COMPLETED" else "FAILED"
        write_final(job_dir, overrides, state, None, line)
    return JobReturn(overrides=overrides, status=JobStatus.COMPLETED, _return_value=None)


def _job_dir(launcher: Any, overrides: list[str], idx: int) -> Path | None:
    """``<hydra.sweep.dir>/<hydra.sweep.subdir>`` of job ``idx``, as the job itself composes it."""
    try:
        cfg = launcher.hydra_context.config_loader.load_sweep_config(launcher.config, overrides)
        with open_dict(cfg.hydra.job):
            cfg.hydra.job.num = idx
        return Path(str(cfg.hydra.sweep.dir)) / str(cfg.hydra.sweep.subdir)
    except Exception:  # a subdir naming something only the job knows: no final.json, the line says it all
        return None


# ------------------------------------------------------------------------------------------------ before Hydra
def check_command_line(argv: Sequence[str]) -> None:
    """``scripts/train.py``'s words naming ``hydra/launcher=slurm``: check the launcher against the cluster and,
    with ``mem_gb``, each job's buffer against that memory, before Hydra makes the sweep dir. One ``error:`` line
    and exit 2 on a refusal; a no-op for any other launcher."""
    words = [w for w in argv if not w.startswith("-")]
    if not any(w.lstrip("+").startswith("hydra/launcher=") for w in words):
        return
    from cardio.config import CONFIG_DIR, command_line_jobs, compose_train

    hydra_words = [w for w in words if w.lstrip("+~").startswith(("hydra/", "hydra."))]
    with report_user_errors():
        jobs = command_line_jobs([w for w in words if w not in hydra_words], multirun=True) or [[]]
        cfg = compose_train(CONFIG_DIR, [*hydra_words, *jobs[0]], hydra_node=True)
        node = cfg.hydra.launcher
        if node.get("_target_") != TARGET:
            return
        try:
            params: dict[str, Any] = OmegaConf.to_container(node, resolve=True)  # type: ignore[assignment]
        except Exception:  # a key naming ${hydra.job...}, known in a job only
            params = OmegaConf.to_container(node, resolve=False)  # type: ignore[assignment]
        check_launcher(params)
        mem_gb = int(params["mem_gb"]) if params.get("mem_gb") else None
        for job in jobs:
            check_job_config(compose_train(CONFIG_DIR, job), mem_gb)


def check_job_config(cfg: DictConfig, mem_gb: int | None = None) -> None:
    """A job's config checked here as the job will check it (``cardio.validate``: keys, types, ranges, the agent
    against the env's spaces), so a bad value stops the command instead of failing every job on the cluster; with
    ``mem_gb``, its buffer against the memory it asks SLURM for (:func:`check_job_memory`).

    Two checks are the node's, not this machine's, and are left to the job: the device (``device=cuda`` is
    resolved where the GPU is) and the node's free memory.

    Raises:
        ConfigError: the first problem, as ``make train`` with the job's words would report it.
    """
    from cardio.preflight import check_agent_spaces, check_memory, env_spaces
    from cardio.validate import validate

    with open_dict(cfg):
        cfg.device = "cpu"
        cfg.run_dir = "<run_dir>"
    validate(cfg, check_env=False)
    plain: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
    spaces = env_spaces(plain["env"])  # one env built for both checks
    check_agent_spaces(plain, *spaces)
    if mem_gb:
        check_memory(plain, *spaces, job_memory(mem_gb))


def job_memory(mem_gb: int) -> Limit:
    """``hydra.launcher.mem_gb`` as the memory limit the pre-flight check holds a job's buffer to."""
    from cardio.limits import Limit

    return Limit(mem_gb * 2**30, f"hydra.launcher.mem_gb={mem_gb}: each job's --mem")


def check_job_memory(cfg: DictConfig, mem_gb: int) -> None:
    """The job's buffer must fit the memory it asks SLURM for (``hydra.launcher.mem_gb``), not only this machine's.

    Raises:
        ConfigError: it does not; the line names ``hydra.launcher.mem_gb`` as the limit.
    """
    from cardio.preflight import check_memory, env_spaces

    with open_dict(cfg):
        cfg.run_dir = "<run_dir>"  # only the buffer's keys are read
    plain: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
    check_memory(plain, *env_spaces(plain["env"]), job_memory(mem_gb))

"""The SLURM launcher's settings checked against the cluster before anything is submitted.

A key SLURM would refuse, or accept and then never run (a job asking for more CPUs than any node of its partition
has waits forever), is refused here in one line naming the key, the value and what the cluster has; a time limit
that leaves no room to train before the checkpoint signal is refused too. What these checks do not cover (an
account, a QOS, a constraint) is left to ``sbatch --test-only`` on the very script that would be submitted, and
SLURM's own reason is the line.

Keys are those of ``configs/hydra/launcher/slurm.yaml`` (hydra-submitit-launcher's ``SlurmQueueConf``):
``partition``, ``timeout_min``, ``cpus_per_task``, ``mem_gb``, ``gpus_per_node``, ``signal_delay_s``...
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cardio.cluster import slurm
from cardio.errors import ConfigError

PREFIX = "hydra.launcher"
"""How the keys are written on the command line: ``hydra.launcher.partition=gpu``."""

OWN_KEYS = ("_target_", "submitit_folder", "max_num_timeout")
"""Launcher keys that are no sbatch parameter (the executor's own, or the launcher class)."""


class LauncherError(ConfigError):
    """A launcher setting this cluster cannot run; the message names the key, the value and what would be right."""


def check_launcher(params: Mapping[str, Any]) -> None:
    """Check the launcher settings against the cluster (its partitions and nodes), then ``sbatch --test-only``.

    Args:
        params: the resolved ``hydra.launcher`` node (``OmegaConf.to_container(cfg.hydra.launcher, resolve=True)``).

    Raises:
        LauncherError: SLURM's commands are missing, or a key the cluster cannot satisfy.
        ClusterError: the controller does not answer, or ``sbatch --test-only`` refused (SLURM's reason).
    """
    if not slurm.available():
        raise LauncherError(
            "hydra/launcher=slurm: SLURM's sbatch, scontrol and squeue are not on this machine's PATH; run from a "
            "login node of the cluster, or try the same jobs here with hydra/launcher=slurm_local"
        )
    found = slurm.partitions()
    part = pick_partition(found, params.get("partition"))
    check_time(params, part)
    check_node_fit(params, part)
    test_only(params)


def pick_partition(found: Mapping[str, slurm.Partition], name: str | None) -> slurm.Partition:
    """The partition jobs go to: ``name``, or the cluster's default one; it must exist and be ``UP``."""
    listing = ", ".join(f"{p.name}{' (default)' if p.default else ''}" for p in found.values()) or "none"
    if name is None:
        default = [p for p in found.values() if p.default]
        if not default:
            raise LauncherError(
                f"{PREFIX}.partition=null: this cluster has no default partition; choose one of: {listing}"
            )
        part = default[0]
    elif name not in found:
        raise LauncherError(f"{PREFIX}.partition={name!r}: no such partition on this cluster; partitions: {listing}")
    else:
        part = found[name]
    if part.state != "UP":
        raise LauncherError(
            f"{PREFIX}.partition={part.name!r} is {part.state}: its jobs would wait until an admin brings it UP; "
            f"partitions: {listing}"
        )
    return part


def check_time(params: Mapping[str, Any], part: slurm.Partition) -> None:
    """``timeout_min`` must fit the partition's ``MaxTime`` (else the job waits forever, ``PartitionTimeLimit``)
    and leave time to train before SLURM's checkpoint signal, which comes ``signal_delay_s`` before the limit.

    The signal is the job's checkpoint: the run writes ``last.ckpt`` at the next step boundary and the job is
    requeued (docs/cluster.md), so a limit at or below the lead time checkpoints before any training.
    """
    timeout = params.get("timeout_min")
    lead = int(params.get("signal_delay_s") or 0)
    if timeout is None:
        return
    if not isinstance(timeout, int | float) or timeout <= 0:
        raise LauncherError(f"{PREFIX}.timeout_min={timeout!r}: expected a positive number of minutes")
    if timeout > part.max_time_min:
        raise LauncherError(
            f"{PREFIX}.timeout_min={timeout}: above partition {part.name!r}'s MaxTime of {part.max_time_min:g} min; "
            f"at most {PREFIX}.timeout_min={part.max_time_min:g} (a longer run is requeued from its checkpoint)"
        )
    if timeout * 60 <= lead:
        raise LauncherError(
            f"{PREFIX}.timeout_min={timeout} ({timeout * 60:g} s) is not above {PREFIX}.signal_delay_s={lead}, the "
            f"run's checkpoint interval on the cluster (the checkpoint signal comes that long before the limit): "
            f"the job would checkpoint and requeue before it trains; raise timeout_min above {lead / 60:g} min "
            f"or lower signal_delay_s"
        )
    if timeout * 60 < 2 * lead:
        warnings.warn(
            f"{PREFIX}.timeout_min={timeout}: each job trains only {timeout * 60 - lead:g} s before its checkpoint "
            f"signal ({PREFIX}.signal_delay_s={lead}); every requeue costs a start-up",
            stacklevel=2,
        )


def check_node_fit(params: Mapping[str, Any], part: slurm.Partition) -> None:
    """``cpus_per_task`` (times ``tasks_per_node``), ``mem_gb`` and ``gpus_per_node`` must fit one node of the
    partition: SLURM would otherwise refuse the job ("Requested node configuration is not available")."""
    if not part.nodes:
        return
    tasks = int(params.get("tasks_per_node") or 1)
    wanted = [
        ("cpus_per_task", params.get("cpus_per_task"), lambda n: n.cpus / tasks, "CPUs", ""),
        ("mem_gb", params.get("mem_gb"), lambda n: n.memory_mb // 1024, "GB of memory", " (RealMemory)"),
        ("gpus_per_node", params.get("gpus_per_node"), lambda n: n.gpus, "GPUs", " (Gres)"),
    ]
    for key, value, have, what, where in wanted:
        if value is None or value == 0:
            continue
        most = max(have(n) for n in part.nodes)
        if value > most:
            widest = max(part.nodes, key=have).name
            per = f" per task ({tasks} tasks per node)" if key == "cpus_per_task" and tasks > 1 else ""
            fix = f"{PREFIX}.{key}={most:g}" if most else f"{PREFIX}.{key}=0 (or another partition)"
            raise LauncherError(
                f"{PREFIX}.{key}={value}: no node of partition {part.name!r} has that many {what}{per}; the largest "
                f"({widest}) has {most:g}{where}; at most {fix}"
            )


def submitit_parameters(params: Mapping[str, Any]) -> dict[str, Any]:
    """The launcher's keys as ``submitit.AutoExecutor.update_parameters`` takes them (as hydra-submitit-launcher
    passes them): the shared ones as they are, the SLURM ones prefixed ``slurm_``."""
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
    from omegaconf import OmegaConf

    shared = set(OmegaConf.structured(BaseQueueConf).keys())
    return {k if k in shared else f"slurm_{k}": v for k, v in params.items() if k not in OWN_KEYS}


def test_only(params: Mapping[str, Any]) -> None:
    """``sbatch --test-only`` on the batch script submitit would submit with these settings: SLURM validates
    every option (account, QOS, constraint...) and schedules nothing.

    Raises:
        ClusterError: SLURM's reason, on one line.
    """
    import submitit

    with tempfile.TemporaryDirectory(prefix="cardio-sbatch-") as folder:
        executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
        executor.update_parameters(**submitit_parameters(params))
        inner: Any = executor._executor  # the SlurmExecutor: its script text is what would be submitted
        script = Path(folder) / "test.sh"
        script.write_text(inner._make_submission_file_text("true", "test"))
        try:
            slurm.command(["sbatch", "--test-only", str(script)])
        except slurm.ClusterError as exc:
            reason = str(exc).replace(f"sbatch --test-only {script}: ", "")
            raise slurm.ClusterError(f"SLURM refuses the job ({PREFIX}.*): {reason}") from None

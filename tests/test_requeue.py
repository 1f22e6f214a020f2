"""The job a process runs in, read from SLURM's environment: the name messages use and the id requeue takes."""

from __future__ import annotations

from cardio.cluster.requeue import ThisJob, this_job


def test_outside_slurm_there_is_no_job() -> None:
    assert this_job({}) is None
    assert this_job({"SLURM_JOB_ID": ""}) is None


def test_a_plain_job_is_named_and_requeued_by_its_id() -> None:
    assert this_job({"SLURM_JOB_ID": "42", "SLURMD_NODENAME": "n1"}) == ThisJob("42", "42", 0, "n1")


def test_an_array_task_is_named_by_array_and_task_but_requeued_by_its_own_id() -> None:
    # `scontrol requeue 50_0` is refused for an array of one task; the task's own SLURM_JOB_ID always works
    env = {
        "SLURM_JOB_ID": "57", "SLURM_ARRAY_JOB_ID": "50", "SLURM_ARRAY_TASK_ID": "3",
        "SLURM_RESTART_COUNT": "2", "SLURMD_NODENAME": "n1",
    }  # fmt: skip
    assert this_job(env) == ThisJob("50_3", "57", 2, "n1")
    assert this_job({**env, "SLURM_RESTART_COUNT": "x"}) == ThisJob("50_3", "57", 0, "n1")

"""The cluster path on a real SLURM: multirun, multi-seed, an Optuna sweep as a job array, requeue, scancel,
refused launcher settings (issue 23). Every test drives the commands a user types (``make multirun``, ``make
sweep``) against the one-node cluster of ``.ci/slurm.sh`` (``make test-cluster``; CI runs them with
``CARDIO_REQUIRE_SLURM=1``, where a missing cluster fails instead of skipping).

The outputs of a job are compared with those of the same run trained here without SLURM, by the per-array and
per-column hashes of ``bench/run_matrix.py``: a requeued job that lost, repeated or reordered one step differs.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from bench.run_matrix import hash_run_dir
from cardio.sweep.storage import RETRY_OF

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONF = Path(os.environ.get("CARDIO_SLURM_DIR", "/tmp/cardio-slurm")) / "slurm.conf"
REQUIRE = os.environ.get("CARDIO_REQUIRE_SLURM") == "1"


def slurm_env() -> dict[str, str]:
    """This process's environment, with ``.ci/slurm.sh``'s ``SLURM_CONF`` when none is set."""
    env = dict(os.environ)
    if "SLURM_CONF" not in env and DEFAULT_CONF.is_file():
        env["SLURM_CONF"] = str(DEFAULT_CONF)
    for var in [v for v in env if v.startswith("SLURM_") and v != "SLURM_CONF"]:
        del env[var]  # a test run inside a SLURM job must not look like one of its own jobs
    for var in ("MAKEFLAGS", "MAKEOVERRIDES", "MFLAGS", "MAKELEVEL"):
        env.pop(var, None)  # `make test-cluster PYTEST_ARGS=...`'s words are not the inner make's
    return env


def cluster_missing() -> str | None:
    """Why no cluster answers here (``None``: one does)."""
    if shutil.which("sinfo") is None:
        return "no SLURM commands on PATH"
    try:
        done = subprocess.run(["sinfo", "-h", "-o", "%T"], env=slurm_env(), capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "sinfo did not answer in 20 s"
    if done.returncode != 0:
        return f"sinfo: {(done.stderr.strip().splitlines() or ['no answer'])[-1]}"
    if not {"idle", "mixed", "allocated"} & set(done.stdout.split()):
        return f"no node is up (sinfo: {' '.join(done.stdout.split()) or 'no nodes'})"
    return None


MISSING = cluster_missing()
SKIP_LINE = (
    f"no SLURM cluster ({MISSING}): `.ci/slurm.sh start` (as root) brings up a one-node one and prints its "
    f"SLURM_CONF; CARDIO_REQUIRE_SLURM=1 makes this a failure"
)
pytestmark = [pytest.mark.slurm, pytest.mark.skipif(MISSING is not None and not REQUIRE, reason=SKIP_LINE)]


@pytest.fixture(autouse=True)
def _cluster_required() -> None:
    if MISSING is not None:
        pytest.fail(f"CARDIO_REQUIRE_SLURM=1 but {SKIP_LINE}")


# one job per CPU of the 2-core node; short DQN runs on CartPole, as a user would shorten them
JOB = ["hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1"]
SHORT = ["runner.total_steps=2000", "runner.eval_freq=1000", "runner.eval_episodes=5", "logger=csv"]


def make(*words: str, timeout: float = 420) -> subprocess.CompletedProcess[str]:
    """``make <words>`` in the repo, as a user types it."""
    return subprocess.run(
        ["make", "--no-print-directory", *words],
        cwd=REPO,
        env=slurm_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def start_make(*words: str, log: Path) -> subprocess.Popen[str]:
    """``make <words>`` in the background, its stdout and stderr into ``log``."""
    with log.open("w") as out:
        return subprocess.Popen(
            ["make", "--no-print-directory", *words],
            cwd=REPO,
            env=slurm_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            stdin=subprocess.DEVNULL,
        )


def slurm(*args: str) -> str:
    done = subprocess.run(list(args), env=slurm_env(), capture_output=True, text=True, timeout=30, check=True)
    return done.stdout


def job_ids() -> set[str]:
    """Every job the controller knows (finished ones stay listed: ``MinJobAge`` in ``.ci/slurm.sh``)."""
    return set(slurm("squeue", "-h", "-t", "all", "-r", "-o", "%i").split())


def wait_for(what: str, ready: Callable[[], bool], timeout: float, proc: subprocess.Popen[str] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the command ended (exit {proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} after {timeout:.0f} s")
        time.sleep(0.5)


def rows(path: Path) -> int:
    try:
        return max(0, len(path.read_text().splitlines()) - 1)
    except FileNotFoundError:
        return 0


def outputs_differ(a: Path, b: Path) -> list[str]:
    """The files of two run dirs whose training outputs differ (progress.csv columns, evaluations, weights)."""
    ha, hb = hash_run_dir(a), hash_run_dir(b)
    assert set(ha) >= {"progress.csv", "evaluations.npz", "weights.npz"}, sorted(ha)
    return [name for name in sorted(set(ha) | set(hb)) if ha.get(name) != hb.get(name)]


def release_now(job: str) -> None:
    """A requeued job waits ~2 minutes (its BeginTime) before it may start again; a test needs no such pause."""
    wait_for(f"job {job} back in the queue", lambda: "PENDING" in slurm("squeue", "-h", "-j", job, "-o", "%T"), 60)
    slurm("scontrol", "update", f"JobId={job}", "StartTime=now")


def read_study(storage: Path, name: str) -> optuna.Study:
    backend = optuna.storages.journal.JournalFileBackend(str(storage))
    return optuna.load_study(study_name=name, storage=optuna.storages.JournalStorage(backend))


# ------------------------------------------------------------------------------------------------- multirun
def test_three_seed_multirun_through_slurm_prints_the_summary_and_matches_local_jobs(tmp_path: Path) -> None:
    cluster, local = tmp_path / "slurm", tmp_path / "local"
    done = make("multirun", "hydra/launcher=slurm", "seed=0,1,2", *SHORT, *JOB, f"hydra.sweep.dir={cluster}")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    array = re.search(r"submitted 3 job\(s\) to SLURM as array (\d+)", done.stdout)
    assert array is not None, done.stdout
    assert {f"{array[1]}_{i}" for i in range(3)} <= job_ids()  # three tasks of one array, on the real controller
    assert "multirun summary" in done.stdout
    with (cluster / "summary.csv").open() as f:
        (row,) = list(csv.DictReader(f))
    assert (row["n"], row["failed"]) == ("3", "0")
    finals = [json.loads((cluster / str(i) / "final.json").read_text()) for i in range(3)]
    assert [f["status"] for f in finals] == ["COMPLETED"] * 3
    values = [f["value"] for f in finals]
    assert float(row["mean"]) == pytest.approx(sum(values) / 3)

    # the same jobs with Hydra's own launcher on this machine: the same run dirs, the same numbers
    here = make("multirun", "seed=0,1,2", *SHORT, f"hydra.sweep.dir={local}")
    assert here.returncode == 0, here.stderr[-3000:]
    for i in range(3):
        # diff.patch is written when the checkout has uncommitted changes, which may come and go meanwhile
        names = {p.name for p in (cluster / str(i)).iterdir()} - {"slurm_job.json", "diff.patch"}
        assert names == {p.name for p in (local / str(i)).iterdir()} - {"diff.patch"}
        assert outputs_differ(cluster / str(i), local / str(i)) == [], f"job {i}"
    assert json.loads((cluster / "0" / "slurm_job.json").read_text())["job_id"] == f"{array[1]}_0"


def test_a_multi_seed_run_is_one_slurm_job(tmp_path: Path) -> None:
    pytest.importorskip("jax", reason="seeds=[...] batches the JAX twins (the jax extra)")
    done = make(
        "multirun", "hydra/launcher=slurm", "agent=dqn_jax", "seeds=[0,1]", *SHORT, *JOB, f"hydra.sweep.dir={tmp_path}"
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "submitted 1 job(s)" in done.stdout
    run = tmp_path / "0"
    assert sorted(p.name for p in run.glob("seed_*")) == ["seed_0", "seed_1"]
    for seed in (0, 1):
        assert rows(run / f"seed_{seed}" / "progress.csv") > 0
    assert json.loads((run / "final.json").read_text())["status"] == "COMPLETED"


def test_a_cancelled_multirun_job_is_reported_with_its_id_state_and_log(tmp_path: Path) -> None:
    runs, log = tmp_path / "runs", tmp_path / "multirun.log"  # the log outside: a used sweep dir is never reused
    long = ["runner.total_steps=15000", "runner.eval_freq=5000", "logger=csv"]
    proc = start_make("multirun", "hydra/launcher=slurm", "seed=0,1", *long, *JOB, f"hydra.sweep.dir={runs}", log=log)
    try:
        wait_for("array id", lambda: "as array" in log.read_text(), 120, proc)
        array = re.search(r"as array (\d+)", log.read_text())[1]  # type: ignore[index]
        wait_for("job 1 training", lambda: rows(runs / "1" / "progress.csv") > 0, 120, proc)
        slurm("scancel", f"{array}_1")
        proc.wait(timeout=300)
    finally:
        proc.kill()
    text = log.read_text()
    assert proc.returncode != 0, text[-3000:]  # make reports the multirun's exit 1
    line = next(ln for ln in text.splitlines() if ln.startswith("error: multirun job #1"))
    assert f"SLURM job {array}_1" in line and "CANCELLED" in line, line
    logfile = Path(re.search(r"log: (\S+?\.err)", line)[1])  # type: ignore[index]
    assert logfile.is_file()
    final = json.loads((runs / "1" / "final.json").read_text())
    assert final["status"] == "CANCELLED" and final["value"] is None
    assert json.loads((runs / "0" / "final.json").read_text())["status"] == "COMPLETED"
    with (runs / "summary.csv").open() as f:
        (row,) = list(csv.DictReader(f))
    assert (row["n"], row["failed"]) == ("1", "1")


# ------------------------------------------------------------------------------------------------ preemption
def interrupted_run(tmp_path: Path, seed: int, interrupt: Callable[[str], object]) -> tuple[Path, Path]:
    """A one-job multirun on SLURM, ``interrupt(job id)`` once it has written a few progress rows, waited to its
    end (exit 0); then the same run trained locally. Returns (the SLURM job's run dir, the local run dir)."""
    cluster, local = tmp_path / "slurm", tmp_path / "local"
    run = [f"seed={seed}", "runner.total_steps=20000", "runner.eval_freq=4000", "logger=csv"]
    log = tmp_path / "multirun.log"
    proc = start_make("multirun", "hydra/launcher=slurm", *run, *JOB, f"hydra.sweep.dir={cluster}", log=log)
    try:
        wait_for("array id", lambda: "as array" in log.read_text(), 120, proc)
        # an array of one task is known by the array's id alone (`scontrol requeue <id>_0` is an invalid job id)
        job = re.search(r"as array (\d+)", log.read_text())[1]  # type: ignore[index]
        wait_for("a few progress rows", lambda: rows(cluster / "0" / "progress.csv") >= 3, 180, proc)
        before = rows(cluster / "0" / "progress.csv")
        interrupt(job)
        release_now(job)  # a requeued job waits for its BeginTime (about two minutes) otherwise
        proc.wait(timeout=400)
    finally:
        proc.kill()
    assert proc.returncode == 0, log.read_text()[-3000:]
    attempts = json.loads((cluster / "0" / "slurm_job.json").read_text())["attempts"]
    assert [a["restarts"] for a in attempts] == [0, 1]  # it did stop and start again
    assert before < rows(cluster / "0" / "progress.csv")  # the interruption came mid-run, not after the end
    here = make("train", *run, f"hydra.run.dir={local}")
    assert here.returncode == 0, here.stderr[-3000:]
    return cluster, local


def test_a_job_requeued_mid_run_ends_with_the_outputs_of_an_uninterrupted_run(tmp_path: Path) -> None:
    # as a preempting SLURM does: SIGTERM, back to the queue
    cluster, local = interrupted_run(tmp_path, 0, lambda job: slurm("scontrol", "requeue", job))
    (out,) = (cluster / ".submitit").glob("*/*_log.out")
    assert "restarted: continuing" in out.read_text()
    assert outputs_differ(cluster / "0", local) == []


def test_the_time_limit_signal_checkpoints_and_the_job_requeues_itself(tmp_path: Path) -> None:
    """SLURM's ``--signal`` ahead of the time limit (SIGUSR2, sent here with ``scancel --signal``): the run
    checkpoints, the job requeues itself (SLURM would not: ``release_now`` finds it queued only if it did) and its
    next attempt ends as an uninterrupted run."""
    cluster, local = interrupted_run(tmp_path, 1, lambda job: slurm("scancel", "--signal=USR2", job))
    (err,) = (cluster / ".submitit").glob("*/*_log.err")
    assert "time limit near, checkpoint written, requeued (1 of 10)" in err.read_text()
    assert outputs_differ(cluster / "0", local) == []


# ------------------------------------------------------------------------------------------------ sweeps
def sweep_words(tmp_path: Path, study: str, *extra: str) -> list[str]:
    return [
        "sweep",
        "hydra/launcher=slurm",
        *JOB,
        f"study_name={study}",
        f"sweep.output_dir={tmp_path}",
        f"sweep.export_dir={tmp_path / 'experiment'}",
        "sweep.heartbeat_interval=2",
        *extra,
    ]


def test_a_two_worker_sweep_runs_as_a_job_array_with_pruning(tmp_path: Path) -> None:
    pruning = ["sweep.pruner=median", "sweep.pruner_args.n_startup_trials=1", "sweep.pruner_args.n_warmup_steps=0"]
    words = sweep_words(tmp_path, "array", "n_workers=2", "n_trials=8", *pruning)
    done = make(*words, "runner.total_steps=2000", "runner.eval_freq=500", "runner.eval_episodes=5")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    array = re.search(r"submitted 2 sweep worker\(s\) to SLURM as array (\d+)", done.stdout)
    assert array is not None, done.stdout
    study = read_study(tmp_path / "array.journal", "array")
    trials = study.get_trials(deepcopy=False)
    states = [t.state for t in trials]
    assert states.count(TrialState.COMPLETE) + states.count(TrialState.PRUNED) == 8
    assert states.count(TrialState.PRUNED) >= 1, [(t.number, t.state, t.intermediate_values) for t in trials]
    workers = {t.user_attrs["worker"].rpartition("slurm:")[2] for t in trials if "worker" in t.user_attrs}
    assert workers == {f"{array[1]}_0", f"{array[1]}_1"}  # both tasks of the array took trials
    best = (tmp_path / "experiment" / "array_best.yaml").read_text()
    assert "study 'array'" in done.stdout and "best trial" in done.stdout and best


def test_a_sweep_worker_cancelled_mid_trial_leaves_every_trial_counted_once(tmp_path: Path) -> None:
    words = sweep_words(tmp_path, "cancel", "n_workers=2", "n_trials=4", "sweep.pruner_args.n_startup_trials=1000")
    log = tmp_path / "sweep.log"
    proc = start_make(*words, "runner.total_steps=6000", "runner.eval_freq=2000", "runner.eval_episodes=5", log=log)
    journal = tmp_path / "cancel.journal"
    try:
        wait_for("array id", lambda: "as array" in log.read_text(), 120, proc)
        array = re.search(r"as array (\d+)", log.read_text())[1]  # type: ignore[index]
        victim = f"{array}_1"

        def victim_trains() -> bool:
            for t in read_study(journal, "cancel").get_trials(deepcopy=False):
                if t.state == TrialState.RUNNING and t.user_attrs.get("worker", "").endswith(f"slurm:{victim}"):
                    return rows(tmp_path / "cancel" / f"trial_{t.number:04d}" / "seed_0" / "progress.csv") > 0
            return False

        wait_for(f"worker {victim} inside a trial", victim_trains, 240, proc)
        slurm("scancel", victim)
        proc.wait(timeout=400)
    finally:
        proc.kill()
    text = log.read_text()
    assert f"error: sweep worker SLURM job {victim}" in text and "CANCELLED" in text, text[-3000:]
    trials = read_study(journal, "cancel").get_trials(deepcopy=False)
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(finished) == 4, [(t.number, t.state) for t in trials]  # the study holds n_trials, none twice
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    (stopped,) = failed
    assert "SIGTERM" in stopped.user_attrs["fail_reason"]
    (retry,) = [t for t in trials if t.user_attrs.get(RETRY_OF) == stopped.number]
    assert retry in finished and retry.params == stopped.params  # its parameters trained once, elsewhere
    assert "best trial" in text


# ------------------------------------------------------------------------------------------------ bad input
BAD_LAUNCHER = {
    "unknown partition": (["hydra.launcher.partition=nosuch"], "no such partition on this cluster; partitions:"),
    "more CPUs than a node": (["hydra.launcher.cpus_per_task=4096"], "no node of partition"),
    "time limit below the checkpoint signal": (["hydra.launcher.timeout_min=1"], "is not above"),
    "SLURM's own refusal": (
        ["+hydra.launcher.additional_parameters.constraint=nosuch"],
        "SLURM refuses the job (hydra.launcher.*): ",
    ),
    "a job's value the job would refuse": (["agent.lr=-1"], "agent.lr=-1: out of range"),
    "buffer above the job's memory": (
        ["hydra.launcher.mem_gb=1", "buffer.capacity=100000000"],
        "1.0 GB of memory is available (hydra.launcher.mem_gb=1",
    ),
}


@pytest.mark.parametrize("command", ["multirun", "sweep"])
@pytest.mark.parametrize("case", list(BAD_LAUNCHER))
def test_a_bad_launcher_setting_is_one_line_and_exit_2_before_anything_is_submitted(
    tmp_path: Path, case: str, command: str
) -> None:
    words, expected = BAD_LAUNCHER[case]
    if command == "multirun":
        argv = ["multirun", "hydra/launcher=slurm", "seed=0,1", *words, f"hydra.sweep.dir={tmp_path / 'runs'}"]
    else:
        argv = [*sweep_words(tmp_path, "bad", "n_trials=2"), *words]
    known = job_ids()
    done = make(*argv, timeout=120)
    errors = [ln for ln in done.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and expected in errors[0], done.stdout[-2000:] + done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert re.search(r"make: \*\*\* \[\S+: \w+\] Error 2", done.stderr)  # the command's exit status was 2
    assert job_ids() == known  # nothing reached the controller
    assert not (tmp_path / "runs").exists() and not (tmp_path / "bad").exists()


def test_the_controller_is_left_idle(tmp_path: Path) -> None:
    """Last in the file: no test leaves a job behind (a stuck job would hold the node for the next CI step)."""
    deadline = time.monotonic() + 60
    while slurm("squeue", "-h", "-o", "%i").strip() and time.monotonic() < deadline:
        time.sleep(1)
    assert slurm("squeue", "-h", "-o", "%i %T %j").strip() == ""

"""Workers on one study through a real database server: PostgreSQL on 127.0.0.1, the way several machines
would share a sweep. Two ``scripts/sweep.py`` processes run against one study; one is killed in the middle of
a trial. Its trial must end FAILED by the heartbeat, the other worker must finish the study, and every trial
number must be recorded exactly once.

The server is a throwaway cluster (initdb + pg_ctl) in a temporary folder, started for this module and stopped
after it. Without PostgreSQL's server binaries the test is skipped, unless ``CARDIO_REQUIRE_POSTGRES=1`` (set
by ``.ci/run``, which installs Debian's ``postgresql`` package) turns the skip into a failure.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from tests.helpers import pythonpath

REPO = Path(__file__).resolve().parents[1]
# Trials of a few seconds, so that a worker can be caught mid-trial.
TRIAL = [
    "runner.total_steps=1500",
    "runner.eval_freq=750",
    "runner.eval_episodes=2",
    "runner.log_interval=500",
    "runner.schedule.learning_starts=100",
    "runner.schedule.train_freq=4",
    "runner.schedule.gradient_steps=1",
    "runner.schedule.batch_size=32",
    "agent.hidden_sizes=[16,16]",
]


def server_bin_dir() -> Path | None:
    """Folder holding initdb and pg_ctl: Debian's /usr/lib/postgresql/<version>/bin, else the PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb and shutil.which("pg_ctl") else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL server on 127.0.0.1 for this module only; yields an SQLAlchemy URL to an empty database."""
    bin_dir = server_bin_dir()
    if bin_dir is None:
        reason = "no PostgreSQL server binaries (initdb, pg_ctl): apt-get install postgresql (see .ci/run)"
        if os.environ.get("CARDIO_REQUIRE_POSTGRES") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    # initdb refuses to run as root: then the cluster belongs to the `postgres` user.
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    folder = Path(tempfile.mkdtemp(prefix="cardio-pg-"))
    if as_user:
        shutil.chown(folder, "postgres")
    data, port = folder / "data", free_port()

    def pg(*args: str) -> None:
        subprocess.run([*as_user, *args], check=True, capture_output=True, timeout=60)

    try:
        pg(str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync")
        opts = f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=off"
        pg(str(bin_dir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(folder / "server.log"), "-w", "start")
        pg(str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "cardio")
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/cardio"
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


def start_worker(sweep_file: Path, storage: str, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "scripts/sweep.py", f"sweep={sweep_file}", f"storage={storage}", *TRIAL]
    env = {**os.environ, "PYTHONPATH": pythonpath(REPO), "WANDB_MODE": "disabled"}
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def wait_for(predicate, what: str, timeout: float = 120.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:.0f} s for {what}")
        time.sleep(0.2)


def test_two_workers_on_postgres_one_killed_mid_trial(postgres_url: str, tmp_path: Path) -> None:
    n_trials = 3
    sweep_file = tmp_path / "pg.yaml"
    sweep_file.write_text(
        yaml.safe_dump(
            {
                "study_name": "pg",
                "n_trials": n_trials,
                "heartbeat_interval": 1,
                "grace_period": 5,  # a loaded CI machine may starve a live worker's heartbeat thread for 2 s
                "pruner": "none",
                "enqueue_base": False,
                "plots": False,
                "output_dir": str(tmp_path / "sweeps"),
                "export_dir": str(tmp_path / "experiment"),
                "params": {"agent.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}},
            }
        )
    )

    def study() -> optuna.Study | None:
        try:
            return optuna.load_study(study_name="pg", storage=postgres_url)
        except KeyError:
            return None

    # started together: they race to create the tables and the study, and the loser loads it
    victim = start_worker(sweep_file, postgres_url, tmp_path / "victim.log")
    survivor = start_worker(sweep_file, postgres_url, tmp_path / "survivor.log")

    def victim_trial() -> list[optuna.trial.FrozenTrial]:
        s = study()
        return [
            t
            for t in (s.get_trials() if s else [])
            if t.state == TrialState.RUNNING and t.user_attrs.get("worker", "").endswith(f":{victim.pid}")
        ]

    wait_for(lambda: bool(victim_trial()), "the victim worker to be inside a trial")
    killed_number = victim_trial()[0].number
    victim.kill()
    victim.wait(timeout=30)
    assert survivor.wait(timeout=180) == 0, (tmp_path / "survivor.log").read_text()[-3000:]

    trials = optuna.load_study(study_name="pg", storage=postgres_url).get_trials()
    numbers = [t.number for t in trials]
    assert numbers == list(range(len(trials)))  # every trial recorded exactly once, none lost
    states = {t.number: t.state for t in trials}
    assert states[killed_number] == TrialState.FAIL  # marked failed by the heartbeat, not left RUNNING
    assert sum(s == TrialState.COMPLETE for s in states.values()) == n_trials
    assert sum(s == TrialState.FAIL for s in states.values()) == 1
    workers = {t.user_attrs["worker"].rpartition(":")[2] for t in trials}
    assert str(survivor.pid) in workers

"""The entry points as a user meets them: a user error is one line on stderr and exit code 2, before anything is
written; a bug keeps its traceback; a full disk ends the run with one line naming the file."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cardio.errors import USER_ERROR_EXIT, ConfigError, DiskFullError, report_user_errors
from tests.helpers import pythonpath

ROOT = Path(__file__).resolve().parents[1]


def run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PYTHONPATH": pythonpath(ROOT), "WANDB_MODE": "disabled", **(env or {})}
    full_env.pop("CARDIO_TRACEBACK", None)
    full_env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=300, check=False
    )


def assert_one_line_refusal(proc: subprocess.CompletedProcess[str], *words: str) -> None:
    assert proc.returncode == USER_ERROR_EXIT, (proc.returncode, proc.stderr[-2000:])
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "├──" not in proc.stdout and "└──" not in proc.stdout, "config tree printed before the error"


TRAIN_CASES = [
    (["agent=nope"], ["agent=nope", "dqn"]),  # Hydra composition error
    (["agent.gamma=1.5"], ["agent.gamma=1.5", "[0, 1]"]),  # validation
    (["-m", "seed=0,1", "agent.lr=-1"], ["agent.lr=-1", "> 0"]),  # multirun: refused before any job starts
    # the native vector env's own refusal, raised by building one copy in validation (it came after the run dir
    # and the config tree, wrapped by Hydra's instantiate with exit code 1)
    (["env.vectorization=vector_entry_point"], ["env.autoreset='same_step'", "set env.autoreset=next_step"]),
]


@pytest.mark.parametrize(("words", "expected"), TRAIN_CASES, ids=[" ".join(w) for w, _ in TRAIN_CASES])
def test_train_refuses_in_one_line_before_writing(words: list[str], expected: list[str], tmp_path: Path) -> None:
    proc = run([str(ROOT / "scripts" / "train.py"), *words, "logger=csv"], cwd=tmp_path)
    assert_one_line_refusal(proc, *expected)
    assert not (tmp_path / "outputs").exists(), "a run dir was made for a refused run"


def test_sweep_refuses_in_one_line(tmp_path: Path) -> None:
    proc = run([str(ROOT / "scripts" / "sweep.py"), "agent.gamma=2", "sweep.n_trials=1"], cwd=tmp_path)
    assert_one_line_refusal(proc, "agent.gamma=2")


def test_evaluate_refuses_a_bad_config_in_one_line(tmp_path: Path) -> None:
    from omegaconf import open_dict

    from cardio.build import save_config
    from tests.conftest import compose_train

    cfg = compose_train()
    with open_dict(cfg):
        cfg.run_dir = str(tmp_path)
        cfg.runner.eval_episodes = 0  # a hand-edited config.yaml
    save_config(cfg, tmp_path)
    proc = run([str(ROOT / "scripts" / "evaluate.py"), str(tmp_path)], cwd=tmp_path)
    assert_one_line_refusal(proc, "runner.eval_episodes=0")
    # episodes=0 was read as "the default" (10) and recorded as 0 in eval.json; a negative count gave NaN
    for option in ("episodes=0", "episodes=-3", "video_episodes=0"):
        proc = run([str(ROOT / "scripts" / "evaluate.py"), str(tmp_path), option], cwd=tmp_path)
        assert proc.returncode == USER_ERROR_EXIT and f"error: {option}: expected a positive number" in proc.stderr
        assert not (tmp_path / "eval.json").exists()


def test_full_disk_while_logging_ends_the_run_in_one_line(tmp_path: Path) -> None:
    """ENOSPC from the CSV writer (simulated) stops the run: one line naming progress.csv and the cause."""
    script = (
        "import errno, runpy, sys\n"
        "from cardio.loggers.csv import CSVSink\n"
        "def full(self, metrics, step):\n"
        "    raise OSError(errno.ENOSPC, 'No space left on device')\n"
        "CSVSink.write = full\n"
        f"sys.argv = ['train.py', 'hydra.run.dir={tmp_path / 'run'}', 'logger=csv', 'runner.total_steps=256',\n"
        "    'runner.log_interval=64', 'runner.eval_episodes=1', 'runner.schedule.learning_starts=64']\n"
        f"runpy.run_path({str(ROOT / 'scripts' / 'train.py')!r}, run_name='__main__')\n"
    )
    proc = run(["-c", script], cwd=tmp_path)
    assert proc.returncode == USER_ERROR_EXIT, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    assert str(tmp_path / "run" / "progress.csv") in errors[0] and "No space left on device" in errors[0]
    assert "Traceback" not in proc.stderr


# ------------------------------------------------------------------------------------------------ in-process
def test_user_errors_exit_2_with_one_line(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CARDIO_TRACEBACK", raising=False)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    with pytest.raises(SystemExit) as info, report_user_errors():
        raise ConfigError("agent.lr=-1: out of range;\nexpected a number > 0")
    assert info.value.code == USER_ERROR_EXIT
    assert capsys.readouterr().err == "error: agent.lr=-1: out of range; expected a number > 0\n"
    with pytest.raises(SystemExit), report_user_errors():  # a raw ENOSPC from anywhere is a user error too
        raise OSError(errno.ENOSPC, "No space left on device", "/data/run/last.ckpt")
    assert "/data/run/last.ckpt" in capsys.readouterr().err


def test_a_user_error_raised_while_hydra_instantiates_is_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``instantiate`` wraps what a target raises into ``InstantiationException``: a user error behind it is still
    one line and exit 2; a bug behind it keeps its traceback."""
    from hydra.utils import instantiate

    monkeypatch.delenv("CARDIO_TRACEBACK", raising=False)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    with pytest.raises(SystemExit) as info, report_user_errors():
        instantiate({"_target_": "cardio.envs.make_env", "id": "CartPole-v1", "vectorization": "nope"})
    assert info.value.code == USER_ERROR_EXIT
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "vectorization" in err and "target" not in err
    with pytest.raises(Exception, match="Error in call to target") as bug, report_user_errors():
        instantiate({"_target_": "operator.truediv", "_args_": [1, 0]})
    assert isinstance(bug.value.__cause__, ZeroDivisionError)


def test_bugs_keep_their_traceback_and_the_switch_shows_user_tracebacks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CARDIO_TRACEBACK", raising=False)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    with pytest.raises(ZeroDivisionError), report_user_errors():
        _ = 1 / 0
    with pytest.raises(OSError), report_user_errors():  # an OSError that is not a full disk is not the user's
        raise OSError(errno.EIO, "I/O error")
    monkeypatch.setenv("CARDIO_TRACEBACK", "1")
    with pytest.raises(ConfigError), report_user_errors():
        raise ConfigError("shown with its traceback")


def test_full_disk_while_checkpointing_keeps_the_previous_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cardio import checkpoint

    path = tmp_path / "last.ckpt"
    checkpoint.atomic_write(path, lambda f: f.write(b"previous checkpoint"))

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(DiskFullError) as info:
        checkpoint.atomic_write(path, lambda f: f.write(b"x" * 1000))
    assert str(path) in str(info.value) and "No space left on device" in str(info.value)
    assert path.read_bytes() == b"previous checkpoint"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]  # no temporary file left


def test_full_disk_while_logging_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cardio.loggers import Logger
    from cardio.loggers.csv import CSVSink

    logger = Logger(run_dir=tmp_path)
    logger.log({"train/loss": 1.0}, step=1)

    def full(self: CSVSink, metrics: object, step: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(CSVSink, "write", full)
    with pytest.raises(DiskFullError, match=r"progress\.csv: No space left on device"):
        logger.log({"train/loss": 2.0}, step=2)

    def broken(self: CSVSink, metrics: object, step: int) -> None:  # any other failure: warned, skipped
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(CSVSink, "write", broken)
    with pytest.warns(UserWarning, match="skipped"):
        Logger(run_dir=tmp_path / "b").log({"train/loss": 1.0}, step=1)

"""TensorBoard event files and W&B offline runs written by real `scripts/train.py` runs, read back with the
metrics in them, across `resume=<run dir>`: the resumed run continues the same TensorBoard/W&B run with no
duplicate and no missing step."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import pythonpath

ROOT = Path(__file__).resolve().parents[1]
COMMON = [
    "agent.hidden_sizes=[16]",
    "runner.schedule.learning_starts=64",
    "runner.schedule.train_freq=4",
    "runner.schedule.gradient_steps=1",
    "runner.log_interval=100",
    "runner.eval_freq=0",
    "runner.eval_episodes=2",
    "logger=[csv,tensorboard,wandb]",
]


def train(run_dir: Path, *extra: str) -> None:
    env = {**os.environ, "PYTHONPATH": pythonpath(ROOT), "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    env.pop("WANDB_API_KEY", None)
    cmd = [sys.executable, "scripts/train.py", f"hydra.run.dir={run_dir}", *COMMON, *extra]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]


def tensorboard_steps(run_dir: Path, tag: str) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tensorboard"))  # purges events past a resumed run's restart step
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def wandb_records(path: Path) -> Iterator[object]:
    """The protobuf records of a ``.wandb`` file: W&B's LevelDB-style log of 32 KiB blocks, each record split
    into chunks with a 7-byte header (crc32, length, type: 1 full, 2 first, 3 middle, 4 last)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B transaction log"
    pos, block, chunks = 7, 32768, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # block trailer
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0 and length == 0:  # zero padding to the end of the block
            pos += left
            continue
        chunks += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(chunks)
            chunks = b""
            yield record


def wandb_history(run_dir: Path) -> tuple[set[str], list[dict]]:
    """Run ids and history rows of every offline W&B run file under the run dir, in the order written."""
    ids: set[str] = set()
    rows: list[dict] = []
    for path in sorted((run_dir / "wandb").glob("offline-run-*/*.wandb")):
        for record in wandb_records(path):
            kind = record.WhichOneof("record_type")  # type: ignore[attr-defined]
            if kind == "run":
                ids.add(record.run.run_id)  # type: ignore[attr-defined]
            elif kind == "history":
                items = record.history.item  # type: ignore[attr-defined]
                rows.append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in items})
    return ids, rows


@pytest.fixture(scope="module")
def resumed_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("resume") / "run"
    train(run_dir, "runner.total_steps=400")
    shutil.copy(run_dir / "last.ckpt", run_dir.parent / "at_400.ckpt")
    train(run_dir, f"resume={run_dir}", "runner.total_steps=600")
    return run_dir


def test_tensorboard_continues_across_a_resume(resumed_run: Path) -> None:
    logged = tensorboard_steps(resumed_run, "time/total_timesteps")
    assert logged == [(s, float(s)) for s in range(100, 601, 100)]  # each step once, values are the steps
    assert [s for s, _ in tensorboard_steps(resumed_run, "eval/mean_reward")] == [400, 600]
    assert len(tensorboard_steps(resumed_run, "train/loss")) == 6


def test_wandb_offline_run_continues_across_a_resume(resumed_run: Path) -> None:
    ids, rows = wandb_history(resumed_run)
    assert len(list((resumed_run / "wandb").glob("offline-run-*"))) == 2  # the first run and the resumed one
    assert ids == {(resumed_run / "wandb_run_id.txt").read_text().strip()}  # both write the same W&B run
    train_steps = [r["_step"] for r in rows if "train/loss" in r]
    assert train_steps == [100, 200, 300, 400, 500, 600]
    assert [r["_step"] for r in rows if "eval/mean_reward" in r] == [400, 600]
    assert all(r["time/total_timesteps"] == r["_step"] for r in rows)


def test_tensorboard_drops_what_a_crashed_run_logged_after_its_checkpoint(resumed_run: Path) -> None:
    """Roll the run back to its checkpoint at 400, as if it had died after logging 500 and 600 but before
    checkpointing them, and resume to 800: TensorBoard shows each step once, 500 and 600 from the new run."""
    shutil.copy(resumed_run.parent / "at_400.ckpt", resumed_run / "last.ckpt")
    before = dict(tensorboard_steps(resumed_run, "time/fps"))
    train(resumed_run, f"resume={resumed_run}", "runner.total_steps=800")
    after = tensorboard_steps(resumed_run, "time/fps")
    assert [s for s, _ in after] == list(range(100, 801, 100))
    assert dict(after)[400] == before[400] and dict(after)[500] != before[500]  # 500 comes from the new run


def test_a_resumed_copy_of_a_run_logs_to_a_new_wandb_run(resumed_run: Path, tmp_path: Path) -> None:
    """A run dir copied while the original stays (a fork): resumed, the copy would have continued the original's
    W&B run id, and once both continue their histories merge into one W&B run. It gets a new id; the original's
    is kept aside in the copy and untouched in the original."""
    original_id = (resumed_run / "wandb_run_id.txt").read_text()
    copy = tmp_path / "copy"
    shutil.copytree(resumed_run, copy)
    train(copy, f"resume={copy}", "runner.total_steps=1000")  # past what any other test of this module ran
    assert (resumed_run / "wandb_run_id.txt").read_text() == original_id
    assert (copy / "wandb_run_id.copied.txt").read_text() == original_id
    new_id = (copy / "wandb_run_id.txt").read_text().strip()
    assert new_id != original_id.strip()
    ids, _ = wandb_history(copy)
    assert ids == {original_id.strip(), new_id}  # the copied files of the original's run, and the fork's own
    train(copy, f"resume={copy}", "runner.total_steps=1100")  # the fork resumed again continues its own run
    assert (copy / "wandb_run_id.txt").read_text().strip() == new_id

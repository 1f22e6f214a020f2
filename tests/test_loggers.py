"""Logger fan-out and every sink: console (TTY and not), CSV, JSONL, TensorBoard read back, W&B offline files."""

from __future__ import annotations

import io
import json
import os
import warnings
from pathlib import Path

import pandas as pd
import pytest
from hydra.utils import instantiate
from omegaconf import open_dict
from rich.console import Console

from cardio.loggers import ConsoleSink, CSVSink, JSONLSink, Logger, TensorBoardSink, WandbSink
from cardio.loggers.wandb import default_mode
from tests.conftest import compose_train

ROWS = [  # (step, metrics): a rollout row, a row with a new metric, an eval row
    (100, {"rollout/ep_rew_mean": 10.0, "train/loss": 0.5}),
    (200, {"rollout/ep_rew_mean": 20.0, "train/loss": 0.25, "train/q_mean": 1.0}),
    (200, {"eval/mean_reward": 30.0}),
]


class Recorder:
    def __init__(self) -> None:
        self.rows: list[tuple[int, dict[str, float]]] = []
        self.closed_with: int | None = None

    def write(self, metrics, step):
        self.rows.append((step, dict(metrics)))

    def close(self, exit_code: int = 0):
        self.closed_with = exit_code


class Broken:
    def __init__(self) -> None:
        self.calls = 0

    def write(self, metrics, step):
        self.calls += 1
        raise ConnectionError("sink down")

    def close(self):
        raise ConnectionError("still down")


def test_logger_fans_out_and_a_failing_sink_never_stops_the_others(tmp_path: Path) -> None:
    rec, broken = Recorder(), Broken()
    logger = Logger({"rec": rec, "broken": broken, "off": None}, run_dir=tmp_path)
    assert set(logger.sinks) == {"rec", "broken", "csv", "jsonl"}  # None switches a sink off; files always on
    with pytest.warns(UserWarning, match="'broken' failed in write"):
        for step, metrics in ROWS:
            logger.log(metrics, step)
    assert rec.rows == ROWS and broken.calls == 1  # warned once, then skipped
    with pytest.warns(UserWarning, match="failed to close"):
        logger.close(exit_code=130)
    assert rec.closed_with == 130
    assert logger.state_dict() == {"step": 200}


def test_csv_widens_its_header_and_resume_keeps_rows_up_to_the_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "progress.csv"
    sink = CSVSink(path)
    assert not path.exists()  # opened on first write, so a resume can read it first
    for step, metrics in ROWS:
        sink.write(metrics, step)
    sink.close()
    data = pd.read_csv(path)
    assert list(data["step"]) == [100, 200, 200] and data["train/q_mean"].isna().tolist() == [True, False, True]
    resumed = CSVSink(path)
    resumed.resume(100)
    resumed.write({"rollout/ep_rew_mean": 15.0}, 150)
    resumed.close()
    assert list(pd.read_csv(path)["step"]) == [100, 150]
    # negative control: without resume() the file starts afresh
    fresh = CSVSink(path)
    fresh.write({"rollout/ep_rew_mean": 1.0}, 5)
    fresh.close()
    assert list(pd.read_csv(path)["step"]) == [5]


def test_jsonl_rows_hold_their_own_metrics_and_resume_drops_later_ones(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    sink = JSONLSink(path)
    for step, metrics in ROWS:
        sink.write(metrics, step)
    sink.write({"train/loss": float("nan")}, 300)
    sink.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines[2] == {"step": 200, "eval/mean_reward": 30.0} and lines[3]["train/loss"] is None
    with path.open("a") as f:
        f.write('{"step": 40')  # a line cut short by a kill
    resumed = JSONLSink(path)
    resumed.resume(100)
    resumed.write({"train/loss": 0.1}, 150)
    resumed.close()
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [100, 150]


def console_output(terminal: bool) -> str:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=terminal, width=100)
    sink = ConsoleSink(console=console)
    sink.start(total_steps=400, step=0)
    for step, metrics in ROWS:
        sink.progress(step)
        sink.write(metrics, step)
    sink.close()
    return buffer.getvalue()


def test_console_in_a_log_file_has_no_control_codes_but_all_the_facts() -> None:
    text = console_output(terminal=False)
    assert "\x1b" not in text and "\r" not in text
    assert "step 200/400 (50%)" in text and "steps/s" in text and "ETA" in text
    assert "ep return 20" in text and "last eval 30" in text
    assert "run finished" in text and "best eval" in text
    # negative control: on a terminal rich draws the live line with control codes
    assert "\x1b" in console_output(terminal=True)


def test_tensorboard_event_files_read_back(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    sink = TensorBoardSink(tmp_path / "tb")
    sink.log_config({"agent": {"lr": 0.001}})
    for step, metrics in ROWS:
        sink.write(metrics, step)
    sink.close()
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("rollout/ep_rew_mean")] == [(100, 10.0), (200, 20.0)]
    assert [e.step for e in acc.Scalars("eval/mean_reward")] == [200]
    assert "config/text_summary" in acc.Tags()["tensors"]


def test_wandb_offline_run_writes_its_files_and_finishes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    assert default_mode() == "offline"  # no key: never reach the network
    sink = WandbSink(project="cardio-test", dir=tmp_path)
    sink.log_config({"agent": {"_target_": "cardio.agents.dqn.DQNConfig"}, "env": {"id": "CartPole-v1"}, "seed": 3})
    assert sink.group == "DQN-CartPole-v1" and sink.name == tmp_path.name
    for step, metrics in ROWS:
        sink.write(metrics, step)
    sink.close(exit_code=0)
    assert sink.run is None
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("*.wandb"))
    assert (tmp_path / "wandb_run_id.txt").read_text().strip() == sink.run_id


def test_wandb_failure_warns_and_training_goes_on(tmp_path: Path) -> None:
    sink = WandbSink(dir=tmp_path, mode="not-a-mode")
    rec = Recorder()
    logger = Logger({"wandb": sink, "rec": rec})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step, metrics in ROWS:
            logger.log(metrics, step)
        logger.close()
    assert rec.rows == ROWS and any("'wandb' failed" in str(w.message) for w in caught)


@pytest.mark.parametrize("choice", ["[console,tensorboard,wandb]", "all", "csv"])
def test_logger_options_compose_into_one_logger(choice: str, tmp_path: Path) -> None:
    cfg = compose_train([f"logger={choice}"])
    with open_dict(cfg):
        cfg.run_dir = str(tmp_path)
        if "wandb" in cfg.logger.sinks:
            cfg.logger.sinks.wandb.mode = "disabled"
    logger = instantiate(cfg.logger, _convert_="all")
    expected = {"csv", "jsonl"} | ({"console", "tensorboard", "wandb"} if choice != "csv" else set())
    assert set(logger.sinks) == expected
    logger.log_config({"env": {"id": "CartPole-v1"}})
    logger.log({"train/loss": 1.0}, 1)
    logger.close()
    assert (tmp_path / "progress.csv").is_file() and (tmp_path / "metrics.jsonl").is_file()
    assert os.environ.get("WANDB_MODE") == "disabled"  # conftest keeps the suite off the network

"""Plots and aggregate scores from run dirs: grouping, bootstrap bands, IQM, SB3 overlay, a rendered PNG."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from cardio import plotting
from cardio.cli import make_style


def write_run(path: Path, returns: list[float], agent: str = "DQNConfig", steps: int = 100) -> Path:
    """A fake run dir: config.yaml plus progress.csv with rollout rows and eval rows (as the runner logs)."""
    path.mkdir(parents=True)
    (path / "config.yaml").write_text(f"agent:\n  _target_: cardio.agents.x.{agent}\nenv:\n  id: CartPole-v1\n")
    rows = []
    for i, value in enumerate(returns, start=1):
        rows.append({"step": i * steps, "time/total_timesteps": i * steps, "rollout/ep_rew_mean": value})
        rows.append({"step": i * steps, "eval/mean_reward": 2 * value})
    pd.DataFrame(rows).to_csv(path / "progress.csv", index=False)
    return path


@pytest.fixture
def multirun(tmp_path: Path) -> Path:
    """Hydra multirun layout: two configurations x two seeds (seed left out of the subdir names)."""
    root = tmp_path / "multirun"
    write_run(root / "0_agent.lr=0.1", [1, 2, 3])
    write_run(root / "1_agent.lr=0.1", [3, 4, 5])
    write_run(root / "2_agent.lr=0.5", [0, 0, 1])
    write_run(root / "3_agent.lr=0.5", [0, 1, 1])
    return root


def test_seeds_of_one_configuration_group_together(multirun: Path) -> None:
    groups = plotting.group_runs(plotting.load_runs([multirun]))
    assert {k: len(v) for k, v in groups.items()} == {
        "DQN CartPole-v1 agent.lr=0.1": 2,
        "DQN CartPole-v1 agent.lr=0.5": 2,
    }


def test_curve_takes_the_metric_rows_only_and_names_missing_metrics(multirun: Path) -> None:
    run = plotting.load_runs([multirun / "0_agent.lr=0.1"])[0]
    x, y = plotting.curve(run.data, "eval/mean_reward")
    assert x.tolist() == [100, 200, 300] and y.tolist() == [2 * 1, 2 * 2, 2 * 3]
    assert plotting.pick_metric([run], None) == "eval/mean_reward"
    with pytest.raises(KeyError, match=r"train/nope.*rollout/ep_rew_mean"):
        plotting.curve(run.data, "train/nope")


def test_bootstrap_band_brackets_the_mean_and_collapses_for_identical_seeds() -> None:
    values = np.array([[0.0, 1.0, 2.0], [2.0, 3.0, 4.0], [1.0, 2.0, np.nan]])  # third seed ends early
    mean, lo, hi = plotting.bootstrap_mean_band(values)
    np.testing.assert_allclose(mean, [(0 + 2 + 1) / 3, (1 + 3 + 2) / 3, (2 + 4) / 2])
    assert np.all(lo <= mean) and np.all(mean <= hi) and np.all(hi - lo > 0)
    # negative control: seeds that agree leave no band
    same = np.array([[1.0, 2.0], [1.0, 2.0]])
    _, lo, hi = plotting.bootstrap_mean_band(same)
    np.testing.assert_allclose(hi - lo, 0.0)


def test_iqm_trims_a_quarter_at_each_end() -> None:
    assert plotting.iqm([1, 2, 3, 4, 5, 6, 7, 100]) == (3 + 4 + 5 + 6) / 4
    assert plotting.iqm([1.0, 2.0, 3.0]) == 2.0  # fewer than 4 runs: nothing trimmed
    mid, lo, hi = plotting.iqm_ci([1, 2, 3, 4, 5, 6, 7, 100])
    assert lo <= mid <= hi and hi < 100  # the outlier barely moves the IQM


def test_sb3_monitor_and_progress_files_read_as_curves(tmp_path: Path) -> None:
    monitor = tmp_path / "monitor.csv"
    monitor.write_text('#{"t_start": 0, "env_id": "CartPole-v1"}\nr,l,t\n10,10,0.1\n20,20,0.2\n30,30,0.3\n')
    x, y = plotting.read_sb3(monitor, window=2)
    assert x.tolist() == [10, 30, 60] and y.tolist() == [10, 15, 25]
    progress = tmp_path / "progress.csv"
    pd.DataFrame({"time/total_timesteps": [50, 100], "rollout/ep_rew_mean": [9.0, 12.0]}).to_csv(progress, index=False)
    x, y = plotting.read_sb3(progress, "eval/mean_reward")  # SB3 without eval: falls back to ep_rew_mean
    assert x.tolist() == [50, 100] and y.tolist() == [9.0, 12.0]


def test_make_plot_writes_readable_pngs_and_scores(multirun: Path, tmp_path: Path) -> None:
    from scripts.plot import main

    monitor = tmp_path / "monitor.csv"
    monitor.write_text('#{"t_start": 0}\nr,l,t\n5,50,0.1\n7,70,0.2\n')
    out = tmp_path / "plots"
    # the words `make plot runs=... metric=...` forwards, glob included
    scores = main([f"runs={multirun}/*", "metric=rollout/ep_rew_mean", f"out={out}", f"overlay=SB3 DQN:{monitor}"])
    assert scores["DQN CartPole-v1 agent.lr=0.1"][0] == pytest.approx(np.mean([3, 5]))  # IQM of 2 runs = mean
    for name in ("curve_rollout_ep_rew_mean.png", "aggregate_rollout_ep_rew_mean.png"):
        image = np.asarray(Image.open(out / name).convert("L"))
        assert image.shape[0] > 100 and image.shape[1] > 400 and image.std() > 10  # a drawn figure, not blank
    curve = np.asarray(Image.open(out / "curve_rollout_ep_rew_mean.png").convert("RGB")).reshape(-1, 3).astype(int)
    colourful = np.abs(curve - curve.mean(axis=1, keepdims=True)).sum(axis=1) > 60
    assert colourful.sum() > 200  # coloured lines and bands were drawn, not only black text and axes


def test_the_learning_curve_carries_title_labels_and_legend(multirun: Path, tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = plotting.group_runs(plotting.load_runs([multirun]))
    captured = {}
    real_savefig = plt.Figure.savefig

    def spy(fig, *args, **kwargs):  # read the axes back as they are saved
        ax = fig.axes[0]
        captured.update(title=ax.get_title(), x=ax.get_xlabel(), y=ax.get_ylabel(),
                        legend=[t.get_text() for t in ax.get_legend().get_texts()])  # fmt: skip
        return real_savefig(fig, *args, **kwargs)

    plt.Figure.savefig = spy  # type: ignore[method-assign]
    try:
        plotting.plot_learning_curves(groups, "eval/mean_reward", tmp_path / "c.png")
    finally:
        plt.Figure.savefig = real_savefig  # type: ignore[method-assign]
    assert captured["x"] == "env steps" and captured["y"] == "eval/mean_reward" and "95 %" in captured["title"]
    assert captured["legend"] == ["DQN CartPole-v1 agent.lr=0.1 (n=2)", "DQN CartPole-v1 agent.lr=0.5 (n=2)"]


def test_make_style_words_become_options() -> None:
    argv = ["runs=a/b", "c", "metric=eval/x", "--out", "o", "x=y"]
    assert make_style(argv, ["metric", "out"], "runs") == ["a/b", "c", "--metric", "eval/x", "--out", "o", "x=y"]


def test_no_runs_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no progress\.csv"):
        plotting.find_runs([tmp_path])
    assert json.dumps(plotting.iqm_ci([]))  # empty input gives NaNs, not a crash

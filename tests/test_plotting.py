"""Plots and aggregate scores from a real multirun's run dirs: grouping, bootstrap bands, IQM, SB3 overlay, PNGs."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from cardio import plotting
from cardio.cli import make_style
from tests.helpers import TINY, run

CSV_TINY = [*TINY, "logger=csv"]


@pytest.fixture(scope="module")
def multirun(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real ``make multirun agent.lr=1e-3,1e-4 seed=0,1``: two configurations x two seeds, job dirs 0-3."""
    sweep_dir = tmp_path_factory.mktemp("plot") / "multirun"
    run("scripts/train.py", "-m", "agent.lr=1e-3,1e-4", "seed=0,1", *CSV_TINY, f"hydra.sweep.dir={sweep_dir}")
    return sweep_dir


def finals(sweep_dir: Path) -> dict[str, list[float]]:
    """``agent.lr=...`` -> the final eval/mean_reward of its jobs, from the ``final.json`` each job wrote."""
    out: dict[str, list[float]] = {}
    for path in sorted(sweep_dir.glob("*/final.json")):
        record = json.loads(path.read_text())
        lr = next(o for o in record["overrides"] if o.startswith("agent.lr="))
        out.setdefault(f"agent.lr={float(lr.partition('=')[2])}", []).append(record["value"])
    return out


def test_seeds_of_one_configuration_group_together(multirun: Path) -> None:
    groups = plotting.group_runs(plotting.load_runs([multirun]))
    assert {k: sorted(r.path.name for r in v) for k, v in groups.items()} == {
        "agent.lr=0.001": ["0", "1"],  # Hydra's order: lr varies slowest, the seed fastest
        "agent.lr=0.0001": ["2", "3"],
    }
    for group in groups.values():  # each group is the two seeds of one configuration
        seeds = sorted(yaml.safe_load((r.path / "config.yaml").read_text())["seed"] for r in group)
        assert seeds == [0, 1]
    # negative control: configs compared without agent.lr (as the job dirs' names, which hold no override,
    # were compared before) merge the two configurations into one n=4 curve
    merged = plotting.group_runs(plotting.load_runs([multirun]), ignore=["agent.lr"])
    assert {k: len(v) for k, v in merged.items()} == {"DQN CartPole-v1": 4}


def test_curve_takes_the_metric_rows_only_and_names_missing_metrics(multirun: Path) -> None:
    run = plotting.load_runs([multirun / "0"])[0]
    x, y = plotting.curve(run.data, "eval/mean_reward")
    with (multirun / "0" / "progress.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r["eval/mean_reward"]]
    assert x.tolist() == [300, 600] == [float(r["step"]) for r in rows]
    assert y.tolist() == [float(r["eval/mean_reward"]) for r in rows]
    assert y[-1] == json.loads((multirun / "0" / "final.json").read_text())["value"]
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
    scores = main([f"runs={multirun}/*", "metric=eval/mean_reward", f"out={out}", f"overlay=SB3 DQN:{monitor}"])
    assert list(scores) == ["agent.lr=0.001", "agent.lr=0.0001"]
    for label, values in finals(multirun).items():  # IQM of 2 runs = their mean
        assert scores[label][0] == pytest.approx(np.mean(values))
    for name in ("curve_eval_mean_reward.png", "aggregate_eval_mean_reward.png"):
        image = np.asarray(Image.open(out / name).convert("L"))
        assert image.shape[0] > 100 and image.shape[1] > 400 and image.std() > 10  # a drawn figure, not blank
    curve = np.asarray(Image.open(out / "curve_eval_mean_reward.png").convert("RGB")).reshape(-1, 3).astype(int)
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
    assert captured["legend"] == ["agent.lr=0.001 (n=2)", "agent.lr=0.0001 (n=2)"]


def test_make_style_words_become_options() -> None:
    argv = ["runs=a/b", "c", "metric=eval/x", "--out", "o", "x=y"]
    assert make_style(argv, ["metric", "out"], "runs") == ["a/b", "c", "--metric", "eval/x", "--out", "o", "x=y"]


def test_no_runs_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no progress\.csv"):
        plotting.find_runs([tmp_path])
    assert json.dumps(plotting.iqm_ci([]))  # empty input gives NaNs, not a crash


def test_a_label_names_a_swapped_class_once_not_every_key_it_brings() -> None:
    dqn = {"agent._target_": "cardio.agents.dqn.DQNConfig", "agent.lr": 1e-3, "agent.double_q": False, "env.id": "A"}
    ppo = {"agent._target_": "cardio.agents.ppo.PPOConfig", "agent.lr": 3e-4, "agent.clip_range": 0.2, "env.id": "A"}
    varying = ["agent._target_", "agent.lr", "agent.double_q", "agent.clip_range"]
    assert plotting.describe(dqn, varying) == "agent=DQNConfig"
    assert plotting.describe(ppo, varying) == "agent=PPOConfig"
    assert plotting.describe(dqn, ["agent.lr", "env.id"]) == "agent.lr=0.001 env.id=A"


def test_runs_without_config_yaml_are_never_merged(multirun: Path, tmp_path: Path) -> None:
    for job in ("0", "2"):  # two real runs of different configs, their config.yaml lost
        shutil.copytree(multirun / job, tmp_path / "lost" / job)
        (tmp_path / "lost" / job / "config.yaml").unlink()
    with pytest.warns(UserWarning, match="has no config.yaml"):
        groups = plotting.group_runs(plotting.load_runs([tmp_path / "lost"]))
    assert sorted(len(v) for v in groups.values()) == [1, 1]


def test_configs_of_one_class_that_differ_are_not_merged_under_the_class_name(multirun: Path) -> None:
    runs = plotting.load_runs([multirun / "0", multirun / "2"])  # DQN lr=1e-3 and DQN lr=1e-4
    ppo = plotting.Run(runs[0].path, runs[0].data, {**runs[0].config, "agent._target_": "x.PPOConfig"})
    labels = sorted(plotting.group_runs([*runs, ppo]))
    assert len(labels) == 3 and all("agent.lr=" in label for label in labels), labels


def test_runs_take_comma_lists_and_globs(multirun: Path, tmp_path: Path) -> None:
    from scripts.plot import main

    scores = main([f"runs={multirun}/0,{multirun}/2", f"out={tmp_path / 'a'}"])  # `make plot runs=a,b`
    assert list(scores) == ["agent.lr=0.001", "agent.lr=0.0001"]
    scores = main([f"runs={multirun}/[01]"])  # a glob over the two seeds of one config
    assert list(scores) == ["DQN CartPole-v1"]
    assert (multirun / "plots" / "curve_eval_mean_reward.png").is_file()  # beside the glob, not in a dir "[01]"
    assert not (multirun / "[01]").exists()


def test_make_plot_refuses_bad_input_in_one_line(
    multirun: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A glob matching nothing, a metric no run logged, a method missing an env, a word that is no option (it
    was looked for as a run dir): one ``error:`` line and exit 2, no traceback."""
    from scripts.plot import main

    monkeypatch.delenv("CARDIO_TRACEBACK", raising=False)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    cases = [
        ([f"runs={multirun}/[45]"], r"\[45\]: matches no run dir"),
        ([f"runs={multirun}", "metric=train/nope"], r"metric 'train/nope' not logged; columns: \[.*'eval/mean_reward'"),
        ([f"runs={multirun}", "smooth=5"], r"smooth=5: no such option; plot takes metric=, out=,"),
    ]
    for words, message in cases:
        with pytest.raises(SystemExit) as stop:
            main([*words, f"out={tmp_path / 'c'}"])
        assert stop.value.code == 2
        err = [line for line in capsys.readouterr().err.splitlines() if "error: " in line]  # argparse: "<prog>: error:"
        assert len(err) == 1 and re.search(message, err[0]), err
    assert not (tmp_path / "c").exists()


@pytest.fixture(scope="module")
def two_envs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real multirun of two configurations on two envs, two seeds each (8 jobs), final evaluation only."""
    sweep_dir = tmp_path_factory.mktemp("envs") / "multirun"
    replaced = ("runner.total_steps", "runner.eval_freq", "runner.eval_episodes")
    short = [w for w in CSV_TINY if not w.startswith(replaced)]
    short += ["runner.total_steps=300", "runner.eval_freq=0", "runner.eval_episodes=1"]
    run(
        "scripts/train.py",
        "-m",
        "agent.lr=1e-3,1e-4",
        "env=CartPole,Acrobot",
        "seed=0,1",
        *short,
        f"hydra.sweep.dir={sweep_dir}",
    )
    return sweep_dir


def test_the_aggregate_across_envs_scores_normalised_final_evals(two_envs: Path, tmp_path: Path) -> None:
    from scripts.plot import main

    norm = {"CartPole-v1": (20.0, 500.0), "Acrobot-v1": (-500.0, -100.0)}
    words = [f"norm={env}:{low}:{high}" for env, (low, high) in norm.items()]
    main([f"runs={two_envs}/*", "aggregate=true", "reps=200", f"out={tmp_path}", *words])
    record = json.loads((tmp_path / "envs_eval_mean_reward.json").read_text())
    assert record["envs"] == ["CartPole-v1", "Acrobot-v1"]
    # the score matrix is each job's final eval (final.json) normalised by hand: [seed, env] per method
    expected: dict[str, list[list[float]]] = {}
    for path in sorted(two_envs.glob("*/final.json"), key=lambda p: int(p.parent.name)):
        job = json.loads(path.read_text())
        over = dict(o.split("=", 1) for o in job["overrides"])
        env = {"CartPole": "CartPole-v1", "Acrobot": "Acrobot-v1"}[over["env"]]
        low, high = norm[env]
        rows = expected.setdefault(f"agent.lr={float(over['agent.lr'])}", [[0.0, 0.0], [0.0, 0.0]])
        rows[int(over["seed"])][record["envs"].index(env)] = (job["value"] - low) / (high - low)
    assert record["scores"].keys() == expected.keys()
    for label, matrix in expected.items():
        np.testing.assert_allclose(record["scores"][label], matrix)
        iqm, low, high = record["results"][label]["IQM"]
        assert iqm == pytest.approx(np.mean(sorted(np.ravel(matrix))[1:3])) and low <= iqm <= high
    (pair,) = [k for k in record["results"] if " vs " in k]
    x, y = (np.array(expected[m]) for m in pair.split(" vs "))
    wins = np.mean(
        [(x[:, None, t] > y[None, :, t]).mean() + 0.5 * (x[:, None, t] == y[None, :, t]).mean() for t in (0, 1)]
    )
    assert record["results"][pair]["P(X > Y)"][0] == pytest.approx(wins)
    image = np.asarray(Image.open(tmp_path / "envs_eval_mean_reward.png").convert("L"))
    assert image.shape[1] > 1000 and image.std() > 10


def test_the_aggregate_refuses_a_method_missing_an_env(two_envs: Path, tmp_path: Path) -> None:
    runs = plotting.load_runs([two_envs])
    kept = [r for r in runs if not (r.config["agent.lr"] == 1e-4 and r.config["env.id"] == "Acrobot-v1")]
    with pytest.raises(
        ValueError, match=r"method 'agent.lr=0.0001' has runs per env \{'CartPole-v1': 2, 'Acrobot-v1': 0\}"
    ):
        plotting.score_matrices(kept, "eval/mean_reward", {"CartPole-v1": (0, 1), "Acrobot-v1": (0, 1)})
    # by default the 0 of a score is a random policy's return (CartPole-v1: about 22) and the 1 the env's
    # registered reward_threshold
    (low, high) = plotting.reference_scores(["CartPole-v1"])["CartPole-v1"]
    assert 15 < low < 30 and high == 475.0
    with pytest.raises(ValueError, match=r"Pendulum-v1 registers no reward_threshold.*norm=Pendulum-v1:LOW:HIGH"):
        plotting.reference_scores(["Pendulum-v1"])
    # through `make plot aggregate=true`: one error line, exit 2
    from scripts.plot import main

    partial = [str(r.path) for r in kept]
    with pytest.raises(SystemExit) as stop:
        main([",".join(partial), "aggregate=true", f"out={tmp_path / 'refused'}"])
    assert stop.value.code == 2
    assert not (tmp_path / "refused").exists()  # refused before any curve was drawn

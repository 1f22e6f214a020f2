"""Every run dir has one layout, wherever it is made (cardio/rundir.py): a real ``scripts/train.py`` run and the
trials of a real ``scripts/sweep.py`` sweep (SQLite in ``tmp_path``) hold the same files, so a trial evaluates
with ``scripts/evaluate.py`` and plots grouped by its sampled keys; a sweep whose trials all diverge ends with a
summary and one line, not a traceback."""

from __future__ import annotations

import json
import re
from pathlib import Path

import optuna
import pytest

from cardio import plotting
from cardio.rundir import FILES
from tests.helpers import TINY, run


def files(run_dir: Path) -> list[str]:
    """The run dir's entries, Hydra's own ``.hydra/`` record aside (only Hydra apps write it)."""
    conditional = {"diff.patch"}  # written only when the source tree has uncommitted changes
    return sorted(p.name for p in run_dir.iterdir() if not p.name.startswith(".") and p.name not in conditional)


def sweep_file(folder: Path, name: str, lr: tuple[float, float], seeds: list[int]) -> Path:
    """A sweep over ``agent.lr`` (log-uniform in ``lr``) and ``agent.gamma``, no pruner, SQLite in ``folder``."""
    path = folder / f"{name}.yaml"
    path.write_text(
        f"study_name: {name}\nn_trials: 2\nn_workers: 1\nseeds: {seeds}\nsampler: random\nsampler_seed: 0\n"
        f"enqueue_base: false\npruner: none\npruner_args: {{}}\nplots: false\n"
        f"output_dir: {folder / 'sweeps'}\nexport_dir: {folder / 'experiment'}\n"
        f"storage: sqlite:///{folder / (name + '.db')}\n"
        "params:\n"
        f"  agent.lr: {{type: float, low: {lr[0]}, high: {lr[1]}, log: true}}\n"
        "  agent.gamma: {type: categorical, choices: [0.9, 0.99]}\n"
    )
    return path


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, optuna.Study]:
    """A real 2-trial x 2-seed sweep: ``(folder, study)``; trial run dirs under ``folder/sweeps/tiny``."""
    folder = tmp_path_factory.mktemp("sweep")
    run("scripts/sweep.py", f"sweep={sweep_file(folder, 'tiny', (1e-4, 1e-2), [0, 1])}", *TINY)
    return folder, optuna.load_study(study_name="tiny", storage=f"sqlite:///{folder / 'tiny.db'}")


def test_a_sweep_trial_dir_holds_what_a_training_run_dir_holds(
    sweep: tuple[Path, optuna.Study], tmp_path: Path
) -> None:
    folder, study = sweep
    run("scripts/train.py", *TINY, "logger=csv", f"hydra.run.dir={tmp_path / 'train'}")
    trained = files(tmp_path / "train")
    assert set(FILES) <= set(trained)  # the documented layout is what scripts/train.py writes
    trials = sorted((folder / "sweeps" / "tiny").glob("trial_*/seed_*"))
    assert [t.relative_to(folder / "sweeps" / "tiny").as_posix() for t in trials] == [
        "trial_0000/seed_0", "trial_0000/seed_1", "trial_0001/seed_0", "trial_0001/seed_1"
    ]  # fmt: skip
    for trial_dir in trials:
        assert files(trial_dir) == trained, trial_dir
        final = json.loads((trial_dir / "final.json").read_text())
        number, seed = int(trial_dir.parent.name[-4:]), int(trial_dir.name[5:])
        assert final["status"] == "COMPLETED"
        assert final["value"] == study.trials[number].user_attrs[f"value_seed_{seed}"]


def test_each_sweep_trial_evaluates_with_the_evaluate_script(sweep: tuple[Path, optuna.Study]) -> None:
    folder, study = sweep
    for trial in study.trials:
        trial_dir = folder / "sweeps" / "tiny" / f"trial_{trial.number:04d}" / "seed_0"
        run("scripts/evaluate.py", f"run={trial_dir}", "episodes=2")
        result = json.loads((trial_dir / "eval.json").read_text())
        assert result["env_steps"] == 600 and result["episodes"] == 2


def test_plot_groups_sweep_trials_by_their_sampled_keys(sweep: tuple[Path, optuna.Study]) -> None:
    folder, study = sweep
    groups = plotting.group_runs(plotting.load_runs([folder / "sweeps" / "tiny"]))
    params = [t.params for t in study.trials]
    varying = [k for k in ("agent.lr", "agent.gamma") if params[0][k] != params[1][k]]
    assert "agent.lr" in varying  # two log-uniform draws
    expected = {" ".join(f"{k}={p[k]}" for k in varying): [f"trial_{n:04d}"] * 2 for n, p in enumerate(params)}
    assert {label: [r.path.parent.name for r in runs] for label, runs in groups.items()} == expected


def test_a_sweep_whose_trials_all_diverge_ends_with_a_summary_not_a_traceback(tmp_path: Path) -> None:
    # agent.lr drawn around 1e30: every trial's loss is NaN after its first updates
    result = run("scripts/sweep.py", f"sweep={sweep_file(tmp_path, 'nan', (1e29, 1e31), [0])}", *TINY, check=False)
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "Traceback" not in out and "Record does not exist" not in out
    assert "study 'nan': 0 complete, 2 pruned, 0 failed" in result.stdout
    # the reason names what went non-finite (the sweep's NaN-loss pruning, or the runner's non-finite guard)
    assert re.search(r"\n  2 pruned \(trials 0, 1\): diverged: .*(nan|inf|non-finite)", result.stdout), result.stdout
    assert result.stderr.strip().splitlines()[-1] == (
        "sweep 'nan': none of its 2 trials completed (2 pruned, 0 failed; reasons above), "
        "so there is no best config to export"
    )
    assert not (tmp_path / "experiment").exists()  # nothing exported
    for seed_dir in (tmp_path / "sweeps" / "nan").glob("trial_*/seed_0"):  # each diverged run says why
        final = json.loads((seed_dir / "final.json").read_text())
        assert final["status"] == "PRUNED" and final["reason"].startswith("diverged: "), final

"""Real sweeps on CartPole with tiny trials: pruning, divergence, SQLite storage, two workers, resume, export."""

from __future__ import annotations

import csv
import math
import shutil
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
from omegaconf import OmegaConf
from optuna.trial import TrialState

from cardio.sweep.driver import Objective, Sweep, compose_train, run_sweep
from cardio.sweep.pruning import TrialReporter
from cardio.sweep.settings import CONFIG_DIR, SweepConfig

# A DQN trial of about a second: 1000 env steps, evaluated at 500 and at the end.
TINY = [
    "runner.total_steps=1000",
    "runner.eval_freq=500",
    "runner.eval_episodes=2",
    "runner.log_interval=250",
    "runner.schedule.learning_starts=100",
    "runner.schedule.train_freq=4",
    "runner.schedule.gradient_steps=1",
    "runner.schedule.batch_size=32",
    "agent.hidden_sizes=[16,16]",
]
SPACE = {
    "agent.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
    "agent.gamma": {"type": "categorical", "choices": [0.9, 0.99]},
}
ALWAYS_PRUNE = {"pruner": "optuna.pruners.ThresholdPruner", "pruner_args": {"lower": 1e9}}


def make_settings(tmp_path: Path, **changes: object) -> SweepConfig:
    base: dict = dict(
        study_name="tiny",
        output_dir=str(tmp_path / "sweeps"),
        export_dir=str(tmp_path / "experiment"),
        n_trials=2,
        heartbeat_interval=1,
        plots=False,
        enqueue_base=False,
        params=SPACE,
    )
    return SweepConfig(**{**base, **changes})  # type: ignore[arg-type]


def run_one_trial(tmp_path: Path, pruner: optuna.pruners.BasePruner) -> optuna.trial.FrozenTrial:
    settings = make_settings(tmp_path, n_trials=1)
    study = optuna.create_study(direction="maximize", pruner=pruner)
    study.optimize(Objective(Sweep(settings, TINY), study), n_trials=1)
    return study.trials[0]


def test_an_evaluation_below_the_pruner_threshold_stops_the_run_early(tmp_path: Path) -> None:
    trial = run_one_trial(tmp_path, optuna.pruners.ThresholdPruner(lower=1e9))
    assert trial.state == TrialState.PRUNED
    assert list(trial.intermediate_values) == [500]  # the first evaluation, then nothing more ran
    assert trial.user_attrs["pruned_reason"].startswith("pruned at env step 500")
    rows = list(csv.DictReader((tmp_path / "sweeps/tiny/trial_0000/seed_0/progress.csv").open()))
    assert max(int(r["step"]) for r in rows) == 500

    # negative control: the same trial under a pruner that never prunes trains to the end
    kept = run_one_trial(tmp_path / "nop", optuna.pruners.NopPruner())
    assert kept.state == TrialState.COMPLETE
    assert list(kept.intermediate_values) == [500, 1000]
    assert kept.value == kept.intermediate_values[1000]


def test_a_nan_loss_prunes_with_the_reason_recorded() -> None:
    study = optuna.create_study()
    reporter = TrialReporter(study.ask())
    reporter.write({"train/loss": 0.5, "rollout/ep_rew_mean": math.nan}, 100)  # NaN outside train/ is fine
    reporter.on_step_end(runner=None)
    reporter.write({"train/loss": math.nan}, 300)
    with pytest.raises(optuna.TrialPruned, match=r"diverged: train/loss=nan at env step 300"):
        reporter.on_step_end(runner=None)
    assert reporter.trial.user_attrs["pruned_reason"] == "diverged: train/loss=nan at env step 300"


def test_sqlite_sweep_two_workers_then_resume_then_export(tmp_path: Path) -> None:
    # 1. two worker processes share one SQLite study; every trial is pruned at its first evaluation
    first = run_sweep(Sweep(make_settings(tmp_path, n_workers=2, **ALWAYS_PRUNE), TINY))
    trials = first.get_trials()
    assert [t.number for t in trials] == [0, 1]
    assert all(t.state == TrialState.PRUNED and list(t.intermediate_values) == [500] for t in trials)

    # 2. the same command with a larger budget resumes: exactly one more trial, the first two untouched
    settings = make_settings(tmp_path, n_trials=3, pruner="none")
    study = run_sweep(Sweep(settings, TINY))
    trials = study.get_trials()
    assert [t.number for t in trials] == [0, 1, 2]
    assert [t.state for t in trials] == [TrialState.PRUNED, TrialState.PRUNED, TrialState.COMPLETE]
    assert study.best_trial.number == 2

    # 3. the exported experiment composes to exactly the best trial's config
    configs = tmp_path / "configs"
    shutil.copytree(CONFIG_DIR, configs)
    shutil.copy(tmp_path / "experiment" / "tiny_best.yaml", configs / "experiment")
    from_file = compose_train(configs, ["experiment=tiny_best"])
    from_trial = compose_train(configs, study.best_trial.user_attrs["overrides"])
    assert OmegaConf.to_container(from_file) == OmegaConf.to_container(from_trial)
    assert from_file.agent.lr == study.best_params["agent.lr"]


@pytest.mark.parametrize(("env_steps", "step"), [(2000, 2000), (2048, 2000), (4100, 4000), (10240, 10000)])
def test_reports_land_on_scheduled_steps_whatever_the_train_freq(env_steps: int, step: int) -> None:
    # the runner evaluates at the first env step past each eval_freq multiple: 2048 with train_freq=256,
    # 2000 with train_freq=4; a median pruner only compares values reported at equal steps
    study = optuna.create_study()
    reporter = TrialReporter(study.ask(), step_offset=0)
    runner = SimpleNamespace(env_steps=env_steps, eval_freq=2000, total_steps=10000)
    reporter.on_eval(runner, {"eval/mean_reward": 1.0})
    assert list(study.trials[0].intermediate_values) == [step]


def test_a_crashing_trial_fails_with_its_reason_and_the_study_goes_on(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, n_trials=1)
    study = optuna.create_study(direction="maximize")
    objective = Objective(Sweep(settings, [*TINY, "runner.schedule.batch_size=4096", "buffer.capacity=1000"]), study)
    study.optimize(objective, n_trials=1, catch=(Exception,))  # what a worker runs
    trial = study.trials[0]
    assert trial.state == TrialState.FAIL
    reason = trial.user_attrs["fail_reason"]
    assert "Error: runner.schedule.batch_size=4096" in reason and "exceeds buffer.capacity=1000" in reason


@pytest.mark.parametrize("seeds", [None, "[0,1]"], ids=["one_seed", "seeds_together"])
def test_a_trial_whose_runner_fails_to_build_closes_what_it_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seeds: str | None
) -> None:
    """The trial's last ``build_runner`` raises: every logger built so far is closed (no sink left open for the
    next trial in this worker), so are the envs of every runner built, and the trial fails with the build's
    reason."""
    import cardio.sweep.driver as driver

    overrides = list(TINY)
    if seeds is not None:
        pytest.importorskip("jax")
        overrides = [*TINY, "agent=dqn_jax", f"seeds={seeds}"]
    n_runs = 1 if seeds is None else 2
    closed: list[str] = []
    loggers: list = []
    runners: list = []

    def spy_logger(cfg: object) -> object:
        logger = real_build_logger(cfg)
        real_close = logger.close
        logger.close = lambda: (closed.append(f"logger {loggers.index(logger)}"), real_close())[1]
        loggers.append(logger)
        return logger

    def failing_runner(cfg: object, **kwargs: object) -> object:
        if len(runners) == n_runs - 1:
            raise RuntimeError("no runner for this seed")
        runner = real_build_runner(cfg, **kwargs)
        real_close = runner.close
        runner.close = lambda: (closed.append(f"envs {runners.index(runner)}"), real_close())[1]
        runners.append(runner)
        return runner

    real_build_logger, real_build_runner = driver.build_logger, driver.build_runner
    monkeypatch.setattr(driver, "build_logger", spy_logger)
    monkeypatch.setattr(driver, "build_runner", failing_runner)
    settings = make_settings(tmp_path, n_trials=1)
    study = optuna.create_study(direction="maximize")
    study.optimize(Objective(Sweep(settings, overrides), study), n_trials=1, catch=(Exception,))
    assert study.trials[0].state == TrialState.FAIL
    assert study.trials[0].user_attrs["fail_reason"] == "RuntimeError: no runner for this seed"
    assert len(loggers) == n_runs
    assert closed == [*(f"logger {i}" for i in range(n_runs)), *(f"envs {i}" for i in range(n_runs - 1))]

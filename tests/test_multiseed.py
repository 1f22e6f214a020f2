"""Many seeds in one process (cardio/multiseed.py): each seed is the single-seed run, batched.

Seed s must see exactly the env streams, replay samples and PRNG draws of ``seed=s`` alone, end with the same
parameters (within float tolerance: a vmapped matmul may sum in another order), write the same run-dir layout,
and resume exactly; what cannot be batched is refused by name.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

jax = pytest.importorskip("jax")

from cardio.agents.dqn import DQNConfig  # noqa: E402
from cardio.multiseed import MultiSeedError, MultiSeedRunner  # noqa: E402
from cardio.plotting import group_runs, load_runs  # noqa: E402
from cardio.runner import Runner  # noqa: E402
from cardio.schedules import OffPolicySchedule  # noqa: E402
from tests.test_jax_agents import Recorder, StopAt, make_runner  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SEEDS = (0, 1)


def multi(agent: str, tmp: Path, crash_at: int | None = None) -> tuple[MultiSeedRunner, list[Recorder]]:
    built = [
        make_runner(
            agent, tmp / f"seed_{s}", seed=s, callbacks=(StopAt(crash_at),) if crash_at and s == SEEDS[-1] else ()
        )
        for s in SEEDS
    ]
    return MultiSeedRunner([r for r, _ in built], SEEDS), [rec for _, rec in built]


@pytest.mark.parametrize("agent", ["dqn", "sac"])
def test_each_seed_is_its_single_seed_run(agent: str, tmp_path: Path) -> None:
    together, recorders = multi(agent, tmp_path / "together")
    together.run()
    for i, seed in enumerate(SEEDS):
        alone, recorder = make_runner(agent, tmp_path / f"alone_{seed}", seed=seed)
        alone.run()
        mine = together.runners[i]
        # the data path: env streams into the buffer, and the buffer's sampling generator after the same draws
        stored, expected = mine.buffer.state_dict(), alone.buffer.state_dict()
        for key in ("obs", "action", "reward", "next_obs", "terminated"):
            if agent == "dqn" or key == "terminated":  # discrete actions: the very same streams
                np.testing.assert_array_equal(stored["storage"][key], expected["storage"][key], err_msg=key)
            else:  # continuous actions carry the vmapped actor's float rounding (1e-7) into the env
                np.testing.assert_allclose(stored["storage"][key], expected["storage"][key], atol=1e-4, err_msg=key)
        assert stored["rng"] == expected["rng"]
        # the learning: parameters and logged metrics within float tolerance
        for a, b in zip(
            jax.tree.leaves(mine.agent.state_dict()), jax.tree.leaves(alone.agent.state_dict()), strict=True
        ):
            np.testing.assert_allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), rtol=1e-4, atol=1e-5)
        assert [step for step, _ in recorders[i].rows] == [step for step, _ in recorder.rows]
        for (_, got), (_, want) in zip(recorders[i].rows, recorder.rows, strict=True):
            assert got.keys() == want.keys()
            for key in want:
                assert got[key] == pytest.approx(want[key], rel=1e-3, abs=1e-4), key
    # negative control: the two seeds really differ
    assert recorders[0].rows != recorders[1].rows


def test_seeds_follow_the_schedule_they_share_with_single_runs(tmp_path: Path) -> None:
    """The phase rules live in OffPolicySchedule and both paths ask it: learning waits for a full batch (here
    learning_starts=8 < batch_size=32) and the last phase is cut at total_steps (130 is not a whole phase of 8)."""

    def shrink(runner: Runner) -> Runner:
        runner.schedule = OffPolicySchedule(learning_starts=8, train_freq=4, gradient_steps=2, batch_size=32)
        runner.total_steps = 130
        return runner

    together = MultiSeedRunner([shrink(make_runner("sac", tmp_path / f"t{s}", seed=s)[0]) for s in SEEDS], SEEDS)
    together.run()
    for i, seed in enumerate(SEEDS):
        alone = shrink(make_runner("sac", tmp_path / f"a{seed}", seed=seed)[0])
        alone.run()
        mine = together.runners[i]
        assert (mine.env_steps, mine.updates, mine.iterations) == (alone.env_steps, alone.updates, alone.iterations)
        assert mine.env_steps == 130


def test_all_seeds_resume_exactly_together(tmp_path: Path) -> None:
    straight, expected = multi("dqn", tmp_path / "straight")
    straight.run()
    crashed, first = multi("dqn", tmp_path / "resumed", crash_at=512)
    with pytest.raises(RuntimeError, match="crash"):
        crashed.run()
    resumed, second = multi("dqn", tmp_path / "resumed")
    resumed.load(tmp_path / "resumed")
    assert resumed.env_steps == 512
    resumed.run()
    for i in range(len(SEEDS)):
        assert [row for row in first[i].rows if row[0] <= 512] + second[i].rows == expected[i].rows


def test_refusals_name_the_reason_and_the_way_out(tmp_path: Path) -> None:
    runners = [make_runner("dqn", tmp_path / str(s), seed=s)[0] for s in SEEDS]
    for r in runners:  # a torch agent in the jax runner's place
        r.agent = DQNConfig(hidden_sizes=(8,)).build(
            r.gatherer.env.single_observation_space, r.gatherer.env.single_action_space
        )
    with pytest.raises(MultiSeedError, match=r"DQN has no pure functions.*seed=0,1,2"):
        MultiSeedRunner(runners, SEEDS)
    with pytest.raises(MultiSeedError, match=r"PPOJax is on-policy.*seed=0,1,2"):
        MultiSeedRunner([make_runner("ppo", tmp_path / f"p{s}", seed=s)[0] for s in SEEDS], SEEDS)


def test_train_py_seeds_writes_one_run_dir_per_seed_and_a_summary(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    cmd = [
        sys.executable, "scripts/train.py", "agent=dqn_jax", "env=CartPole", "seeds=[3,5]", "agent.hidden_sizes=[16]",
        "runner.total_steps=600", "runner.schedule.learning_starts=100", "runner.eval_episodes=2",
        "runner.log_interval=200", f"hydra.run.dir={run_dir}",
    ]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    for seed in (3, 5):
        seed_dir = run_dir / f"seed_{seed}"
        for name in ("config.yaml", "progress.csv", "last.ckpt", "final.json"):
            assert (seed_dir / name).is_file(), f"{seed_dir}/{name}"
        assert f"seed: {seed}\n" in (seed_dir / "config.yaml").read_text()
    summary = (run_dir / "summary.csv").read_text().splitlines()
    assert len(summary) == 2 and summary[1].split(",")[1] == "2"  # one config, two seeds
    runs = load_runs([run_dir])  # what `make plot runs=<run_dir>` reads: two runs of one configuration
    assert len(runs) == 2 and len(group_runs(runs)) == 1

    # `make evaluate run=<run_dir>`: every seed from its own weights, then the mean over seeds
    import json

    from scripts.evaluate import main as evaluate

    mean = evaluate([str(run_dir), "--episodes", "2"])
    per_seed = {s: json.loads((run_dir / f"seed_{s}" / "eval.json").read_text()) for s in (3, 5)}
    assert {p["checkpoint"] for p in per_seed.values()} == {str(run_dir / f"seed_{s}" / "weights.npz") for s in (3, 5)}
    top = json.loads((run_dir / "eval.json").read_text())
    assert set(top["seeds"]) == {"3", "5"}
    assert mean["eval/mean_reward"] == pytest.approx(np.mean([p["eval/mean_reward"] for p in per_seed.values()]))
    assert top["mean_over_seeds"] == mean
    with pytest.raises(SystemExit):  # one weights file cannot be every seed's
        evaluate([str(run_dir), "--weights", str(run_dir / "seed_3" / "weights.npz")])


TINY = [
    "agent=dqn_jax", "env=CartPole", "agent.hidden_sizes=[16]", "logger=csv", "runner.schedule.learning_starts=100",
    "runner.schedule.train_freq=4", "runner.schedule.gradient_steps=1", "runner.eval_freq=600",
    "runner.eval_episodes=2", "runner.log_interval=200", "agent.exploration_fraction=0.01",
]  # fmt: skip
"""A tiny DQN CartPole: whole phases of 4 vector steps, so totals of 600 and 1200 cut none; epsilon's schedule is a
fraction of the total, so it ends inside the random warm-up for both totals."""


def train(*words: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "scripts/train.py", *words], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def metric_rows(seed_dir: Path) -> list[dict[str, float]]:
    """``metrics.jsonl`` without the wall-clock ``time/*`` entries."""
    import json

    rows = [json.loads(line) for line in (seed_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [{k: v for k, v in row.items() if not k.startswith("time/")} for row in rows]


def test_resume_of_a_seeds_run_continues_every_seed_exactly(tmp_path: Path) -> None:
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    for words in (
        [*TINY, "seeds=[0,1]", "runner.total_steps=1200", f"hydra.run.dir={straight}"],
        [*TINY, "seeds=[0,1]", "runner.total_steps=600", f"hydra.run.dir={stopped}"],
        [f"resume={stopped}", "runner.total_steps=1200", f"hydra.run.dir={tmp_path / 'hydra'}"],
    ):
        done = train(*words)
        assert done.returncode == 0, done.stderr[-3000:]
    assert "resuming 2 seeds" in done.stdout
    for seed in (0, 1):
        resumed, expected = metric_rows(stopped / f"seed_{seed}"), metric_rows(straight / f"seed_{seed}")
        assert any(row.get("eval/mean_reward") for row in expected) and expected[-1]["step"] == 1200
        assert resumed == expected, f"seed {seed}"
    assert metric_rows(stopped / "seed_0") != metric_rows(stopped / "seed_1")  # negative control: seeds differ
    refused = train(f"resume={stopped}", "seeds=[0,1,2]", f"hydra.run.dir={tmp_path / 'hydra2'}")
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "seeds=[0, 1, 2] differs from the run's seeds=[0, 1]" in refused.stderr


def test_a_sweep_trial_trains_its_seeds_together_and_stores_their_aggregate(tmp_path: Path) -> None:
    """A real `scripts/sweep.py` on SQLite: 2 trials x `seeds=[0,1]` trained in one process per trial; the stored
    value of each trial is the mean of its seeds' final evaluations, read back from their run dirs."""
    import json

    import optuna
    import yaml

    storage = f"sqlite:///{tmp_path / 'study.db'}"
    sweep_file = tmp_path / "tiny.yaml"
    sweep_file.write_text(
        yaml.safe_dump(
            {
                "study_name": "tiny", "storage": storage, "n_trials": 2, "n_workers": 1, "seed_aggregate": "mean",
                "pruner": "none", "enqueue_base": False, "plots": False, "output_dir": str(tmp_path / "sweeps"),
                "export_dir": str(tmp_path / "experiment"),
                "overrides": [*TINY, "seeds=[0,1]", "runner.total_steps=400", "runner.eval_freq=200"],
                "params": {"agent.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}},
            }
        )
    )  # fmt: skip
    cmd = [sys.executable, "scripts/sweep.py", f"sweep={sweep_file}"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    trials = optuna.load_study(study_name="tiny", storage=storage).get_trials()
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 2
    for t in trials:
        finals, at_200 = [], []
        for seed in (0, 1):
            seed_dir = tmp_path / "sweeps" / "tiny" / f"trial_{t.number:04d}" / f"seed_{seed}"
            assert f"seed: {seed}\n" in (seed_dir / "config.yaml").read_text()
            evals = [row for row in metric_rows(seed_dir) if "eval/mean_reward" in row]
            assert [row["step"] for row in evals] == [200, 400]
            at_200.append(evals[0]["eval/mean_reward"])
            finals.append(evals[-1]["eval/mean_reward"])
            assert json.loads((seed_dir / "final.json").read_text())["value"] == finals[-1]
            assert t.user_attrs[f"value_seed_{seed}"] == finals[-1]
        assert t.value == pytest.approx(np.mean(finals), abs=1e-9)
        assert t.intermediate_values[200] == pytest.approx(np.mean(at_200), abs=1e-9)  # reported once per step
    exported = yaml.safe_load((tmp_path / "experiment" / "tiny_best.yaml").read_text())
    assert "seeds" not in exported and exported["runner"]["total_steps"] == 400  # how it was judged is not exported


def test_seed_aggregate_iqm_drops_the_outer_quarters() -> None:
    from cardio.sweep.pruning import aggregate

    values = [0.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 500.0]
    assert aggregate(values, "iqm") == pytest.approx(12.5)  # the middle four
    assert aggregate(values, "mean") == pytest.approx(np.mean(values))
    assert math.isnan(aggregate([1.0, float("nan")], "iqm"))
    with pytest.raises(ValueError, match="seed_aggregate must be one of"):
        aggregate(values, "median")

"""``runner.total_steps`` is what runs: the last rollout (on-policy) or collection phase (off-policy) is cut to the
steps left, so a budget that is not a multiple of a rollout no longer runs up to a whole rollout more (PPO on
LunarLander with 16 envs x 1024 steps asked for 2e4 ran 32,768). Shipped configs build without a warning."""

from __future__ import annotations

import importlib.util
import itertools
import warnings
from pathlib import Path

import pytest
from omegaconf import open_dict

from cardio import checkpoint
from cardio.agents.base import SpaceError
from cardio.buffers import CircularBuffer
from cardio.build import build_runner
from cardio.envs import make_env
from cardio.runner import OffPolicySchedule, OnPolicySchedule, Runner
from tests.conftest import CONFIG_DIR, compose_train, shrink
from tests.test_runner import CountingAgent


def test_on_policy_last_rollout_is_cut_to_the_steps_left() -> None:
    env = make_env("cardio/Counting-v0", num_envs=4)
    agent = CountingAgent()
    runner = Runner(env, agent, CircularBuffer(64, num_envs=4), OnPolicySchedule(n_steps=16), total_steps=200)
    runner.run()
    assert runner.env_steps == 200  # whole rollouts would have run 256
    assert [b["reward"].shape for b in agent.batches] == [(16, 4)] * 3 + [(2, 4)]
    # the cut rollout holds the two newest steps of every stream: obs t continues from the full rollouts
    assert (agent.batches[-1]["obs"][1, :, 1] - agent.batches[-1]["obs"][0, :, 1] != 0).all()


def test_off_policy_last_phase_is_cut_and_earns_its_share_of_updates() -> None:
    env = make_env("cardio/Counting-v0", num_envs=2)
    agent = CountingAgent()
    schedule = OffPolicySchedule(learning_starts=16, train_freq=8, gradient_steps=4, batch_size=8)
    runner = Runner(env, agent, CircularBuffer(400, num_envs=2), schedule, total_steps=100)
    runner.run()
    assert runner.env_steps == 100  # six phases of 16 env steps, then one of 4 (whole phases: 112)
    # updates from the second phase on (env_steps > learning_starts): 5 full phases x 4, then ceil(4 * 2/8) = 1
    assert len(agent.batches) == 5 * 4 + 1


def test_ppo_on_its_zoo_config_runs_exactly_the_budget(tmp_path: Path) -> None:
    """PPO CartPole's rl-zoo numbers: 8 envs x 32 steps = 256 per rollout; 1000 is not a multiple."""
    cfg = shrink(compose_train(["agent=ppo", "env=CartPole"]), tmp_path, total_steps=1000)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # neither the runner nor PPO's minibatch check may warn
        runner = build_runner(cfg)
        runner.run()
    assert runner.env_steps == 1000 and runner.iterations == 4


def test_a_total_that_vector_steps_cannot_hit_warns_with_the_real_count() -> None:
    env = make_env("cardio/Counting-v0", num_envs=4)
    with pytest.warns(UserWarning, match=r"total_steps=1001 is not a multiple of env.num_envs=4.*1004 env steps"):
        runner = Runner(env, CountingAgent(), CircularBuffer(64, num_envs=4), OnPolicySchedule(16), 1001)
    runner.run()
    assert runner.env_steps == 1004


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (Path(CONFIG_DIR) / group).glob("*.yaml") if not p.stem.startswith("_"))


NEEDS_JAX = pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX twins need the jax extra")
SHIPPED = [[f"experiment={e}"] for e in options("experiment")]
SHIPPED += [[f"agent={a}", f"env={e}"] for a, e in itertools.product(options("agent"), options("env"))]
SHIPPED = [pytest.param(o, marks=NEEDS_JAX) if any(w.endswith("_jax") for w in o) else o for o in SHIPPED]


@pytest.mark.parametrize("overrides", SHIPPED, ids=" ".join)
def test_shipped_configs_build_without_a_warning(overrides: list[str], tmp_path: Path) -> None:
    cfg = compose_train(overrides)
    if str(cfg.runner.schedule.get("_target_", "")).endswith("OfflineSchedule"):
        pytest.skip("an offline agent needs a Minari dataset to build (tests/test_offline*.py)")
    with open_dict(cfg):
        cfg.run_dir = str(tmp_path)
        cfg.logger.sinks = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # cardio's warnings; Box2D's SWIG import crashes on "error"
        try:
            runner = build_runner(cfg)
        except SpaceError:  # DQN on Pendulum and the like: refused, not warned about
            return
        except ValueError as refused:  # a JAX twin refuses the zoo's knobs it lacks (refuse_unsupported), or pixels
            assert "does not implement" in str(refused) or "has no CNN torso" in str(refused)
            return
    schedule = runner.schedule
    if isinstance(schedule, OnPolicySchedule) and "batch_size" in cfg.agent:  # PPO's minibatches divide a rollout
        rollout = schedule.n_steps * runner.num_envs
        assert rollout % cfg.agent.batch_size == 0 or cfg.agent.batch_size >= rollout  # or one batch of it all


class GoalAgent:
    """Plays the NestedDict goal between env steps 300 and 500 (return 8), the wrong action otherwise (0)."""

    def __init__(self) -> None:
        self.good = False

    def act(self, obs, explore):
        goal = obs["sensors"]["goal"]
        return goal if self.good else (goal + 1) % 3, {}

    def update(self, batch):
        return {}

    def on_progress(self, env_steps: int, total_steps: int) -> None:
        self.good = 300 <= env_steps < 500

    def state_dict(self):
        return {}

    def load_state_dict(self, state) -> None:
        pass


def test_best_ckpt_keeps_the_best_evaluation(tmp_path: Path) -> None:
    env, eval_env = make_env("cardio/NestedDict-v0", seed=0), make_env("cardio/NestedDict-v0", seed=1)
    schedule = OffPolicySchedule(learning_starts=10_000, batch_size=8)
    runner = Runner(env, GoalAgent(), CircularBuffer(1000), schedule, 800, eval_env, eval_freq=200, eval_episodes=2)
    runner.checkpoint_dir = tmp_path
    runner.run()
    best = checkpoint.load(tmp_path / checkpoint.BEST_NAME, kind="cardio.runner")
    last = checkpoint.load(tmp_path / checkpoint.CHECKPOINT_NAME, kind="cardio.runner")
    assert best["counters"]["last_eval"]["eval/mean_reward"] == 8.0 and best["gatherer"]["stats"].env_steps == 400
    assert last["counters"]["last_eval"]["eval/mean_reward"] == 0.0 and last["gatherer"]["stats"].env_steps == 800

"""JAX twins' behaviour: truncation bootstrapping, PPO's clipped objective, determinism, exact resume, configs,
and a JAX run that never imports torch. Skipped as a whole when the ``jax`` extra is not installed."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import yaml

jax = pytest.importorskip("jax")

from cardio import checkpoint  # noqa: E402
from cardio.agents.jax.dqn import DQNJaxConfig  # noqa: E402
from cardio.agents.jax.networks import mlp  # noqa: E402
from cardio.agents.jax.ppo import PPOJaxConfig, distribution  # noqa: E402
from cardio.agents.jax.sac import SACJaxConfig, q_values  # noqa: E402
from cardio.buffers.circular import CircularBuffer  # noqa: E402
from cardio.envs import make_env  # noqa: E402
from cardio.loggers import Logger  # noqa: E402
from cardio.runner import OffPolicySchedule, OnPolicySchedule, Runner  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ONE = gym.spaces.Box(0.0, 1.0, (1,), np.float32)


# ------------------------------------------------------------------------------------------------ truncation
def constant_chain(truncation_is_terminal: bool, length: int = 8) -> dict[str, np.ndarray]:
    """One state, reward 1 per step, the episode cut by a time limit every ``length`` steps (see test_dqn.py)."""
    ends = np.arange(length) == length - 1
    return {
        "obs": np.ones((length, 1), np.float32),
        "next_obs": np.ones((length, 1), np.float32),
        "action": np.zeros(length, np.int64),
        "reward": np.ones(length, np.float32),
        "terminated": ends if truncation_is_terminal else np.zeros(length, bool),
        "truncated": ends,
    }


def dqn_jax_chain_value(truncation_is_terminal: bool) -> float:
    """Q = 1 + 0.98 Q -> 50 when bootstrapping through the cut; 42.9 under the Huber loss when the cut is treated
    as a terminal (tests/test_dqn.py::fit_constant_chain derives both)."""
    agent = DQNJaxConfig(lr=3e-3, gamma=0.98, hidden_sizes=(16,), target_update_interval=1).build(
        ONE, gym.spaces.Discrete(1), seed=0
    )
    batch = constant_chain(truncation_is_terminal)
    for step in range(3000):
        agent.on_progress(step, 3000)  # target sync every update
        agent.update(batch)
    return float(mlp(agent.state.params, np.ones((1, 1), np.float32))[0, 0])


def test_dqn_jax_bootstraps_through_truncation() -> None:
    assert abs(dqn_jax_chain_value(truncation_is_terminal=False) - 50.0) < 1.0
    # negative control: the same learner with truncation treated as termination misses by far more
    assert abs(dqn_jax_chain_value(truncation_is_terminal=True) - 50.0) > 5.0


def sac_jax_chain_value(truncation_is_terminal: bool) -> float:
    """The same chain for SAC's critics with the entropy term switched off (alpha ~ 0): Q -> 50 bootstrapping
    through the cut; under the squared loss, treating the cut as terminal gives 1 / (1 - 7 * 0.98 / 8) = 7.0."""
    agent = SACJaxConfig(lr=3e-3, gamma=0.98, hidden_sizes=(16,), tau=1.0, ent_coef=1e-8).build(
        ONE, gym.spaces.Box(-1.0, 1.0, (1,), np.float32), seed=0
    )
    batch = constant_chain(truncation_is_terminal)
    batch["action"] = np.zeros((8, 1), np.float32)
    for _ in range(3000):
        agent.update(batch)
    return float(q_values(agent.state.critics, np.ones((1, 1), np.float32), np.zeros((1, 1), np.float32)).min())


def test_sac_jax_bootstraps_through_truncation() -> None:
    assert abs(sac_jax_chain_value(truncation_is_terminal=False) - 50.0) < 2.0
    assert abs(sac_jax_chain_value(truncation_is_terminal=True) - 50.0) > 20.0  # negative control


# ------------------------------------------------------------------------------------------------ PPO objective
def ppo_probabilities(log_prob_old: float, advantage_sign: float, actions: tuple[int, ...] = (0, 1)) -> tuple[Any, Any]:
    """Action probabilities of a one-state PPO before and after one update on a rollout of ``actions`` (cycled)
    where action 0 had advantage ``+advantage_sign`` and action 1 ``-advantage_sign`` (gamma = lambda = 0, values
    0: advantage = reward). The stored log-probs are ``log_prob_old``: the starting ratios are ``p / exp(it)``."""
    agent = PPOJaxConfig(
        lr=1e-2, n_epochs=1, batch_size=16, gamma=0.0, gae_lambda=0.0, normalize_advantage=False, vf_coef=0.0,
        hidden_sizes=(8,), ortho_init=False,
    ).build(gym.spaces.Box(-1.0, 1.0, (2,), np.float32), gym.spaces.Discrete(2), seed=0)  # fmt: skip
    obs = np.ones((1, 2), np.float32)
    before = np.exp(np.asarray(distribution(agent.policy, agent.state.params, obs)))[0]
    action = np.resize(np.asarray(actions), 16).reshape(16, 1)
    rollout = {
        "obs": np.ones((16, 1, 2), np.float32),
        "next_obs": np.ones((16, 1, 2), np.float32),
        "action": action,
        "reward": np.where(action == 0, advantage_sign, -advantage_sign).astype(np.float32),
        "terminated": np.zeros((16, 1), bool),
        "truncated": np.zeros((16, 1), bool),
        "log_prob": np.full((16, 1), log_prob_old, np.float32),
        "value": np.zeros((16, 1), np.float32),
    }
    agent.update(rollout)
    after = np.exp(np.asarray(distribution(agent.policy, agent.state.params, obs)))[0]
    return before, after


def test_ppo_jax_moves_toward_positive_advantages_and_stops_past_the_clip() -> None:
    before, after = ppo_probabilities(np.log(0.5), +1.0)
    assert after[0] > before[0] + 1e-3  # the advantaged action became likelier
    before, after = ppo_probabilities(np.log(0.5), -1.0)
    assert after[0] < before[0] - 1e-3  # negative control: flipping the advantage flips the direction
    # Only action 0, advantaged, its ratio already p / 0.18 ~ 2.7 > 1 + clip: the clipped objective is flat there,
    # so the policy does not move; at ratio ~ 1 the same rollout moves it.
    before, after = ppo_probabilities(np.log(0.5) - 1.0, +1.0, actions=(0,))
    np.testing.assert_allclose(after, before, atol=1e-6)
    before, after = ppo_probabilities(np.log(0.5), +1.0, actions=(0,))
    assert after[0] > before[0] + 1e-3


# ------------------------------------------------------------------------------------------------ runs
class Recorder:
    def __init__(self) -> None:
        self.rows: list[tuple[int, dict[str, float]]] = []

    def write(self, metrics: dict[str, float], step: int) -> None:  # time/* is wall clock
        self.rows.append((step, {k: v for k, v in metrics.items() if not k.startswith("time/")}))

    def close(self) -> None:
        pass


def make_runner(agent_name: str, tmp: Path, seed: int = 0, callbacks: tuple[Any, ...] = ()) -> tuple[Runner, Recorder]:
    """A small run of one twin: DQN on CartPole, SAC on Pendulum, PPO on CartPole; checkpoints every 300 steps."""
    env_id = "Pendulum-v1" if agent_name == "sac" else "CartPole-v1"
    env, eval_env = make_env(env_id, num_envs=2, seed=seed), make_env(env_id, num_envs=1, seed=seed + 1)
    spaces = (env.single_observation_space, env.single_action_space)
    if agent_name == "dqn":
        agent: Any = DQNJaxConfig(lr=1e-3, hidden_sizes=(32,), target_update_interval=100).build(*spaces, seed=seed)
        schedule: Any = OffPolicySchedule(learning_starts=64, train_freq=4, gradient_steps=2, batch_size=32)
        capacity = 2000
    elif agent_name == "sac":
        agent = SACJaxConfig(hidden_sizes=(16,)).build(*spaces, seed=seed)
        schedule = OffPolicySchedule(learning_starts=64, train_freq=4, gradient_steps=1, batch_size=32)
        capacity = 2000
    else:
        agent = PPOJaxConfig(n_epochs=2, batch_size=32, hidden_sizes=(16,)).build(*spaces, seed=seed)
        schedule, capacity = OnPolicySchedule(n_steps=32), 64
    recorder = Recorder()
    runner = Runner(
        env, agent, CircularBuffer(capacity, num_envs=2, seed=seed), schedule, total_steps=768, eval_env=eval_env,
        logger=Logger({"rec": recorder}), seed=seed, log_interval=128, eval_freq=384, eval_episodes=2,
        callbacks=callbacks, checkpoint_dir=tmp, checkpoint_freq=256,
    )  # fmt: skip
    return runner, recorder


@pytest.mark.parametrize("agent_name", ["dqn", "ppo", "sac"])
def test_same_seed_same_metrics_other_seed_other_metrics(agent_name: str, tmp_path: Path) -> None:
    rows = []
    for i, seed in enumerate((0, 0, 1)):
        runner, recorder = make_runner(agent_name, tmp_path / str(i), seed=seed)
        runner.run()
        rows.append(recorder.rows)
    assert any(any(k.startswith("train/") for k in m) for _, m in rows[0])
    assert rows[0] == rows[1]
    assert rows[0] != rows[2]  # negative control: the seed matters


class StopAt:
    """Raises once the runner passes ``steps`` (after that step's checkpoint): a crash mid-run."""

    def __init__(self, steps: int) -> None:
        self.steps = steps

    def on_step_end(self, runner: Runner) -> None:
        if runner.env_steps >= self.steps:
            raise RuntimeError("crash")


@pytest.mark.parametrize("agent_name", ["dqn", "ppo", "sac"])
def test_interrupted_and_resumed_run_matches_the_uninterrupted_one(agent_name: str, tmp_path: Path) -> None:
    straight, recorder = make_runner(agent_name, tmp_path / "straight")
    straight.run()
    crashed, first = make_runner(agent_name, tmp_path / "resumed", callbacks=(StopAt(512),))
    with pytest.raises(RuntimeError, match="crash"):
        crashed.run()
    resumed, second = make_runner(agent_name, tmp_path / "resumed")
    resumed.load(tmp_path / "resumed")  # through the file the runner wrote, as `resume=<run dir>` does
    assert resumed.env_steps == 512 and isinstance(checkpoint.load(tmp_path / "resumed", "cardio.runner"), dict)
    resumed.run()
    assert [row for row in first.rows if row[0] <= 512] + second.rows == recorder.rows
    # negative control: a fresh agent (its PRNG key and weights not restored) drifts
    fresh, third = make_runner(agent_name, tmp_path / "fresh")
    state = checkpoint.load(tmp_path / "resumed", "cardio.runner")
    state["agent"] = fresh.agent.state_dict()
    fresh.load_state_dict(state)
    fresh.run()
    assert [row for row in first.rows if row[0] <= 512] + third.rows != recorder.rows


# ------------------------------------------------------------------------------------------------ configs
@pytest.mark.parametrize("name", ["dqn", "ppo", "sac"])
def test_jax_config_yaml_mirrors_the_torch_one(name: str) -> None:
    """``configs/agent/<name>_jax.yaml`` has the torch twin's keys and values, and the dataclass's fields in order,
    so rl-zoo files and command lines apply to both twins unchanged."""
    torch_yaml = yaml.safe_load((ROOT / "configs" / "agent" / f"{name}.yaml").read_text())
    jax_yaml = yaml.safe_load((ROOT / "configs" / "agent" / f"{name}_jax.yaml").read_text())
    assert jax_yaml["agent"].pop("_target_").endswith("JaxConfig")
    torch_yaml["agent"].pop("_target_")
    assert jax_yaml == torch_yaml
    config = {"dqn": DQNJaxConfig, "ppo": PPOJaxConfig, "sac": SACJaxConfig}[name]
    assert list(jax_yaml["agent"]) == [f.name for f in dataclasses.fields(config)]
    assert config.zoo_name == name


def test_ppo_jax_refuses_image_observations_naming_the_way_out() -> None:
    pixels = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
    with pytest.raises(ValueError, match=r"no CNN torso.*'ALE/Pong-v5'.*agent=ppo"):
        PPOJaxConfig().build(pixels, gym.spaces.Discrete(6), env_id="ALE/Pong-v5")


@pytest.mark.parametrize("key", ["lr_schedule", "clip_range_schedule"])
def test_both_ppo_twins_refuse_an_unknown_schedule_as_a_config_error(key: str) -> None:
    """One check (``PPOConfig.check_schedules``) for the torch and the JAX PPO: the same user error, one line."""
    from cardio.agents.ppo import PPOConfig
    from cardio.errors import ConfigError

    for config in (PPOConfig, PPOJaxConfig):
        with pytest.raises(ConfigError, match=rf"agent\.{key} must be one of \('constant', 'linear'\), got 'cosine'"):
            config(**{key: "cosine"}).build(gym.spaces.Box(-1.0, 1.0, (3,)), gym.spaces.Discrete(2))
        config(**{key: "linear"}).build(gym.spaces.Box(-1.0, 1.0, (3,)), gym.spaces.Discrete(2))  # control


def test_a_jax_run_never_imports_torch(tmp_path: Path) -> None:
    """A short ``agent=dqn_jax`` training through scripts/train.py; torch must not be in ``sys.modules`` at the
    end. A finder records who imported it first, so a failure names the line."""
    code = (
        "import sys, runpy, traceback\n"
        "class Spy:\n"
        "    stack = None\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch' and Spy.stack is None:\n"
        "            Spy.stack = ''.join(traceback.format_stack(limit=12))\n"
        "sys.meta_path.insert(0, Spy())\n"
        f"sys.argv = ['train.py', 'agent=dqn_jax', 'runner.total_steps=300', 'runner.schedule.learning_starts=100',"
        f" 'runner.eval_episodes=1', 'hydra.run.dir={tmp_path}']\n"
        "try:\n"
        "    runpy.run_path('scripts/train.py', run_name='__main__')\n"
        "except SystemExit as stop:\n"
        "    assert not stop.code, stop.code\n"
        "assert 'torch' not in sys.modules, Spy.stack\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "last.ckpt").is_file()


@pytest.mark.parametrize("make", [DQNJaxConfig, SACJaxConfig, PPOJaxConfig], ids=lambda c: c.__name__)
def test_building_a_jax_agent_runs_no_xla_computation(make: Any) -> None:
    """Start-up: the state is numpy until the first jitted call (each eager jax op compiles a small program;
    building DQN that way cost ~2.5 s before the first env step). Its key is the one jax.random.PRNGKey lays out,
    its optimiser state what ``tx.init`` gives, and the initial weights follow torch's bounds."""
    import jax

    box = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
    action_space = gym.spaces.Discrete(3) if make is DQNJaxConfig else gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    config = make(hidden_sizes=(8, 8)) if make is not PPOJaxConfig else make(hidden_sizes=(8, 8), ortho_init=False)
    agent = config.build(box, action_space, seed=5)
    leaves = jax.tree.leaves(agent.state)
    assert leaves and all(type(leaf) is np.ndarray for leaf in leaves)
    assert np.array_equal(agent.state.key, np.asarray(jax.random.PRNGKey(5)))
    opt_state = agent.state.opt_state if make is not SACJaxConfig else agent.state.actor_opt
    params = agent.state.params if make is not SACJaxConfig else agent.state.actor
    expected = agent.tx.init(params)
    assert jax.tree.structure(opt_state) == jax.tree.structure(expected)
    for mine, theirs in zip(jax.tree.leaves(opt_state), jax.tree.leaves(expected), strict=True):
        assert mine.dtype == theirs.dtype and np.array_equal(mine, np.asarray(theirs))

    def first_layer(state: Any) -> np.ndarray:  # torch's nn.Linear init: uniform in +-1/sqrt(fan_in = 4)
        return {DQNJaxConfig: lambda: state.params[0], SACJaxConfig: lambda: state.actor["torso"][0]}.get(
            make, lambda: state.params["pi_torso"][0]
        )()["w"]

    first = first_layer(agent.state)
    assert 0.3 < np.abs(first).max() <= 0.5
    assert not np.array_equal(first, first_layer(config.build(box, action_space, seed=6).state))

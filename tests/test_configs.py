"""Every option of every config group composes and instantiates; every experiment file smoke-runs."""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path
from typing import Any

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf, open_dict

from cardio.agents.base import SpaceError
from cardio.build import build_agent, build_env, build_runner
from cardio.errors import ConfigError
from tests.conftest import CONFIG_DIR, compose_train, shrink

HAS_JAX = importlib.util.find_spec("jax") is not None


def options(group: str) -> list[Any]:
    """The group's options; the JAX twins are skipped without the jax extra."""
    names = sorted(p.stem for p in (Path(CONFIG_DIR) / group).glob("*.yaml") if not p.stem.startswith("_"))
    no_jax = pytest.mark.skipif(not HAS_JAX, reason="needs the jax extra")
    return [pytest.param(n, marks=no_jax) if n.endswith("_jax") else n for n in names]


def test_default_config_is_dqn_on_cartpole_with_zoo_numbers() -> None:
    cfg = compose_train()
    assert cfg.env.id == "CartPole-v1" and cfg.agent._target_.endswith("DQNConfig")
    assert cfg.agent.lr == pytest.approx(2.3e-3) and cfg.runner.schedule.train_freq == 256
    assert compose_train(["~zoo"]).agent.lr == pytest.approx(1e-4)  # the agent's own defaults
    assert compose_train(["agent.lr=0.01"]).agent.lr == pytest.approx(0.01)  # the command line wins


@pytest.mark.parametrize("env", options("env"))
def test_every_env_option_builds(env: str) -> None:
    cfg = compose_train([f"env={env}"])
    vec = build_env(cfg)
    assert vec.num_envs == cfg.env.num_envs
    vec.close()


def test_any_gymnasium_id_works_as_env_id() -> None:
    vec = build_env(compose_train(["env.id=MountainCarContinuous-v0"]))
    assert vec.single_action_space.shape == (1,)


@pytest.mark.parametrize("agent", options("agent"))
def test_every_agent_option_builds_for_some_env(agent: str) -> None:
    built = []
    for env in ("CartPole", "Pendulum"):
        cfg = compose_train([f"agent={agent}", f"env={env}"])
        try:
            built.append(build_agent(cfg, build_env(cfg)))
        except SpaceError:
            continue
        except ConfigError as refused:  # a twin refusing a zoo knob it lacks (ppo_jax and Pendulum's gSDE)
            assert "does not implement" in str(refused)
            continue
    assert built, f"agent {agent} builds for neither CartPole nor Pendulum"


@pytest.mark.parametrize("group", ["buffer", "logger", "runner"])
def test_every_option_of_plain_groups_instantiates(group: str, tmp_path: Path) -> None:
    for name in options(group):
        # the on-policy runner with the default DQN (and its zoo's off-policy schedule) cannot compose
        # ... nor the offline runner with it (an offline agent picks its own)
        agent = ["agent=ppo"] if name == "on_policy" else ["agent=cql"] if name == "offline" else []
        cfg = compose_train([f"{group}={name}", *agent])
        with open_dict(cfg):
            cfg.run_dir = str(tmp_path)
        node = cfg[group]
        extra = {"num_envs": 1} if group == "buffer" else {}
        obj = instantiate(node, _convert_="all", **extra)
        assert obj is not None


@pytest.mark.parametrize("experiment", options("experiment"))
def test_every_experiment_smoke_runs(experiment: str, tmp_path: Path) -> None:
    cfg = shrink(compose_train([f"experiment={experiment}"]), tmp_path, total_steps=64)
    with open_dict(cfg):
        schedule = cfg.runner.schedule
        if "learning_starts" in schedule:  # off-policy: learn within the 64 steps
            schedule.learning_starts = min(schedule.learning_starts, 32)
            schedule.batch_size = min(schedule.batch_size, 32)
            schedule.train_freq = 1
            schedule.gradient_steps = 1
        else:  # on-policy: one short rollout
            schedule.n_steps = max(64 // cfg.env.num_envs, 1)
        cfg.runner.eval_episodes = 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        metrics = build_runner(cfg).run()
    assert "eval/mean_reward" in metrics


def picks_only(experiment: str) -> dict[str, str] | None:
    """``{"agent": .., "env": ..}`` of an experiment file that only overrides config groups; ``None`` for one that
    pins numbers of its own (a sweep result)."""
    raw = OmegaConf.load(Path(CONFIG_DIR) / "experiment" / f"{experiment}.yaml")
    if set(raw) != {"defaults"}:
        return None
    return {key.removeprefix("override /"): value for item in raw.defaults for key, value in item.items()}


@pytest.mark.parametrize("experiment", [e for e in options("experiment") if picks_only(e) is not None])
def test_agent_env_experiments_equal_their_overrides(experiment: str) -> None:
    """An experiment that only picks the agent and env gets the zoo numbers exactly as `agent=.. env=..` does."""
    picks = picks_only(experiment)
    assert picks is not None and sorted(picks) == ["agent", "env"]
    overrides = [f"{group}={choice}" for group, choice in picks.items()]
    assert compose_train([f"experiment={experiment}"]) == compose_train(overrides)

"""Bad input as a new user types it: one short error naming the key, the value and what would be right.

The table runs in one process through the same path as ``scripts/train.py``'s pre-check (parse the overrides,
compose with the zoo overlay, validate); ``test_entry_points.py`` proves the exit code and the one-line,
traceback-free output through real subprocesses for a few rows.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from omegaconf import OmegaConf

from cardio.agents.base import SpaceError, agents_taking, space_refusal
from cardio.config import command_line_jobs, compose_train
from cardio.errors import ConfigError, UserError
from cardio.validate import check_memory, validate
from tests.conftest import CONFIG_DIR


def refusal(words: list[str], multirun: bool = False) -> str:
    """The message of the user error the command line ``words`` gets, composed and validated in-process."""
    from hydra.errors import HydraException

    from cardio.config import _hydra_error

    with pytest.raises(UserError) as info:
        for job in command_line_jobs(words, multirun):
            try:
                cfg = compose_train(CONFIG_DIR, job)
            except HydraException as exc:
                raise _hydra_error(exc) from exc
            validate(cfg)
    return str(info.value)


# (command-line words, words the message must contain)
BAD_INPUTS = [
    (["agent=nope"], ["agent=nope", "a2c", "dqn", "ppo"]),
    (["env=nope"], ["env=nope", "CartPole", "Pendulum"]),
    (["logger=nope"], ["logger=nope", "csv", "wandb"]),
    (["env.id=Nope-v0"], ["env.id='Nope-v0'", "registered"]),
    (["env.id=no_such_module:Maze-v0"], ["env.id='no_such_module:Maze-v0'", "cannot import", "no_such_module"]),
    (["agent.gamma=1.5"], ["agent.gamma=1.5", "[0, 1]"]),
    (["agent.lr=-1"], ["agent.lr=-1", "> 0"]),
    (["agent.lr=0"], ["agent.lr=0", "> 0"]),
    (["seed=-3"], ["seed=-3", "non-negative integer"]),
    (["seed=abc"], ["seed='abc'", "integer"]),
    (["seed=1.5"], ["seed=1.5", "integer"]),
    (["runner.total_steps=0"], ["runner.total_steps=0", "positive integer"]),
    (["runner.total_steps=2.5"], ["runner.total_steps=2.5", "integer", "2.5 is not"]),
    (["runner.total_steps=abc"], ["runner.total_steps='abc'", "integer"]),
    (["runner.eval_episodes=0"], ["runner.eval_episodes=0", ">= 1"]),
    (["agent=dqn", "env=Pendulum"], ["DQN", "Discrete action", "Pendulum-v1", "SAC", "TD3"]),
    (["agent=sac", "env=CartPole"], ["SAC", "Box action", "CartPole-v1", "DQN", "PPO"]),
    (["buffer.capacity=1e12"], ["buffer.capacity", "needs", "available", "transitions fit"]),
    (["buffer.capacity=0"], ["buffer.capacity=0", ">= 1"]),
    (["agent=ppo", "agent.batch_size=100"], ["agent.batch_size=100", "divide", "256"]),
    (["buffer=prioritized", "buffer.alpha=-1"], ["buffer.alpha=-1", ">= 0"]),
    (["buffer=prioritized", "buffer.beta=1.5"], ["buffer.beta=1.5", "[0, 1]"]),
    (["resume=/no/such/dir"], ["resume='/no/such/dir'", "no such run dir"]),
    (["foo=bar="], ["foo=bar=", "override"]),
    (["agent.hidden_sizes=abc"], ["agent.hidden_sizes='abc'", "list"]),
    (["agent.hidden_sizes=[64,0]"], ["agent.hidden_sizes=[64, 0]", ">= 1"]),
    (["agent.double_q=3"], ["agent.double_q=3", "true or false"]),
    (["agent.lrr=0.1"], ["agent.lrr", "+agent.lrr"]),
    (["+agent.lrr=0.1"], ["agent.lrr=0.1", "no argument 'lrr'", "lr"]),
    (["env.num_envs=0"], ["env.num_envs=0", ">= 1"]),
    (["runner.schedule.train_freq_unit=month"], ["runner.schedule.train_freq_unit='month'", "'step' or 'episode'"]),
    (["seed=1,2"], ["seed=1,2", "-m"]),
    (["zoo=nope"], ["zoo=nope", "none", "dqn/CartPole-v1"]),
]


@pytest.mark.parametrize(("words", "expected"), BAD_INPUTS, ids=[" ".join(w) for w, _ in BAD_INPUTS])
def test_bad_input_gets_one_clear_error(words: list[str], expected: list[str]) -> None:
    message = refusal(words)
    for word in expected:
        assert word in message, f"{word!r} missing from: {message}"
    assert "\n" not in message.strip() or len(message.splitlines()) <= 3, message


def test_integral_numbers_are_accepted_and_converted() -> None:
    """`1e6`-style numbers are integers where they are integral: converted in the config, not refused."""
    cfg = validate(
        compose_train(
            CONFIG_DIR, ["runner.total_steps=1e6", "buffer.capacity=2e4", "agent.hidden_sizes=[1e2,64]", "seed=1e1"]
        )
    )
    assert cfg.runner.total_steps == 1_000_000 and type(cfg.runner.total_steps) is int
    assert cfg.buffer.capacity == 20_000 and type(cfg.buffer.capacity) is int
    assert list(cfg.agent.hidden_sizes) == [100, 64] and all(type(v) is int for v in cfg.agent.hidden_sizes)
    assert cfg.seed == 10 and type(cfg.seed) is int
    assert "1000000" in OmegaConf.to_yaml(cfg)  # what config.yaml will say


def test_every_shipped_config_validates() -> None:
    """No false alarms: every experiment and every agent on an env it supports passes, and reads every root key
    it holds (none warned about as read by nothing)."""
    import warnings

    from tests.test_configs import options

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for experiment in options("experiment"):
            validate(compose_train(CONFIG_DIR, [f"experiment={experiment}"]), check_env=False)
        for words in (["agent=ppo"], ["agent=cql", "runner=offline"], ["agent=iql", "env=Pendulum", "runner=offline"]):
            validate(compose_train(CONFIG_DIR, words), check_env=False)
        for agent, env in [("dqn", "CartPole"), ("ppo", "Pendulum"), ("a2c", "Acrobot"), ("sac", "Pendulum")]:
            validate(compose_train(CONFIG_DIR, [f"agent={agent}", f"env={env}", "logger=all"]))
        for agent, env in [("td3", "Pendulum"), ("ddpg", "Pendulum")]:
            validate(compose_train(CONFIG_DIR, [f"agent={agent}", f"env={env}", "buffer=prioritized"]))
        validate(compose_train(CONFIG_DIR, ["agent=drqn", "env=CartPoleNoVel"]))
    assert not [w for w in caught if "cardio reads no root key" in str(w.message)]


def test_a_root_key_nothing_reads_is_warned_about_naming_the_closest() -> None:
    """``+seeed=3`` (a typo of ``seed``) used to be saved and ignored without a word: the run used seed 0."""
    with pytest.warns(UserWarning, match=r"seeed=3: cardio reads no root key 'seeed'.*\(did you mean seed\?\)"):
        validate(compose_train(CONFIG_DIR, ["+seeed=3"]), check_env=False)
    with pytest.warns(UserWarning, match=r"notes='ablation': cardio reads no root key 'notes', it is only saved"):
        validate(compose_train(CONFIG_DIR, ["+notes=ablation"]), check_env=False)


def test_types_come_from_the_agent_dataclass() -> None:
    """A key's type is read from the agent config's field annotation, not from a hand-written list."""
    from cardio.agents.td3 import TD3Config

    assert TD3Config.__annotations__["policy_delay"] in (int, "int")
    assert "policy_delay=1.5: expected an integer" in refusal(["agent=td3", "env=Pendulum", "agent.policy_delay=1.5"])
    assert "noise_type=3: expected a string" in refusal(["agent=td3", "env=Pendulum", "agent.noise_type=3"])
    cfg = validate(compose_train(CONFIG_DIR, ["agent=td3", "env=Pendulum", "agent.policy_delay=3e0"]))
    assert cfg.agent.policy_delay == 3 and type(cfg.agent.policy_delay) is int


# ------------------------------------------------------------------------------------------------ memory
CARTPOLE_OBS = gym.spaces.Box(-1, 1, (4,), np.float32)
ATARI_OBS = gym.spaces.Box(0, 255, (84, 84, 4), np.uint8)


def test_buffer_that_does_not_fit_is_refused_with_both_sizes() -> None:
    cfg = compose_train(CONFIG_DIR, ["buffer.capacity=1e9", "env.id=CartPole-v1"])
    plain = OmegaConf.to_container(cfg, resolve=False)
    plain["buffer"]["capacity"] = 10**9  # type: ignore[index]
    plain["buffer"]["memory_saving"] = False  # type: ignore[index]  # the default, auto, stores frames once
    per_frame_pair = 2 * 84 * 84 * 4
    with pytest.raises(ConfigError) as info:
        check_memory(plain, ATARI_OBS, gym.spaces.Discrete(6), available=64 * 2**30)  # type: ignore[arg-type]
    message = str(info.value)
    assert "buffer.capacity=1e+09" in message and "64.0 GB" in message and "memory_saving" in message
    assert f"{per_frame_pair + 8 + 22} bytes per transition" in message
    # the same buffer with a small capacity fits, and memory_saving halves the observations' share
    plain["buffer"]["capacity"] = 1000  # type: ignore[index]
    full = check_memory(plain, ATARI_OBS, gym.spaces.Discrete(6), available=64 * 2**30)  # type: ignore[arg-type]
    plain["buffer"]["memory_saving"] = True  # type: ignore[index]
    saving = check_memory(plain, ATARI_OBS, gym.spaces.Discrete(6), available=64 * 2**30)  # type: ignore[arg-type]
    assert full - saving == 1000 * 84 * 84 * 4


def test_on_policy_rollout_is_sized_by_n_steps() -> None:
    plain = OmegaConf.to_container(compose_train(CONFIG_DIR, ["agent=ppo"]), resolve=False)
    need = check_memory(plain, CARTPOLE_OBS, gym.spaces.Discrete(2), available=2**40)  # type: ignore[arg-type]
    rollout = plain["runner"]["schedule"]["n_steps"] * plain["env"]["num_envs"]  # type: ignore[index]
    assert need == rollout * (2 * 16 + 8 + 22)


# ------------------------------------------------------------------------------------------------ honest refusals
def test_refusal_lists_the_agents_that_take_the_space() -> None:
    message = space_refusal("DQN", "action", gym.spaces.Box(-1, 1, (1,)), (gym.spaces.Discrete,), "Pendulum-v1")
    assert message is not None
    listed = message.split("agents that take Box actions:")[1]
    # the offline agents (BC, IQL, TD3+BC) take Box actions too: runner=offline, docs/offline.md
    assert {n.strip() for n in listed.split(",")} == {"A2C", "BC", "DDPG", "IQL", "PPO", "SAC", "TD3", "TD3BC"}
    # each agent named really builds on that env (the suggestion is true)
    for name in ("SAC", "TD3", "DDPG", "PPO", "A2C"):
        cfg = compose_train(CONFIG_DIR, [f"agent={name.lower()}", "env=Pendulum"])
        validate(cfg)


def test_refusal_says_when_no_agent_takes_the_space() -> None:
    dict_obs = gym.spaces.MultiBinary(3)  # Dict and Tuple are taken (multi-input torso); a bare MultiBinary is not
    assert agents_taking("observation", dict_obs) == []
    message = space_refusal("DQN", "observation", dict_obs, (gym.spaces.Box,), "Maze-v0")
    assert message is not None
    assert "no cardio agent takes MultiBinary observations" in message and "FlattenObservation" in message
    assert "Pick an agent that supports" not in message
    from cardio.agents.dqn import DQN

    with pytest.raises(SpaceError, match="no cardio agent takes MultiBinary observations"):
        DQN(dict_obs, gym.spaces.Discrete(2), env_id="Maze-v0")

"""The rl-zoo keys cardio learnt: lin_<x> learning rates for every agent, activation, separate actor/critic widths,
log_std_init and ortho_init, and env wrappers given as {_target_, kwargs}."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from cardio.agents.ddpg import DDPGConfig
from cardio.agents.dqn import DQN, DQNConfig
from cardio.agents.ppo import PPO, PPOConfig
from cardio.agents.sac import SAC, SACConfig
from cardio.agents.td3 import TD3, TD3Config
from cardio.build import build_env
from tests.conftest import compose_train

CARTPOLE_OBS = gym.spaces.Box(-np.inf, np.inf, (4,), np.float32)
BOX_OBS = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
BOX = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)


def build(name: str, **kwargs):
    if name == "dqn":
        return DQN(CARTPOLE_OBS, gym.spaces.Discrete(2), DQNConfig(hidden_sizes=(8,), **kwargs))
    if name == "sac":
        return SAC(BOX_OBS, BOX, SACConfig(hidden_sizes=(8,), **kwargs))
    if name == "td3":
        return TD3(BOX_OBS, BOX, TD3Config(hidden_sizes=(8,), **kwargs))
    return DDPGConfig(hidden_sizes=(8,), **kwargs).build(BOX_OBS, BOX)


def learning_rates(agent) -> set[float]:
    """Every optimiser's learning rate, rounded so equal schedules compare equal."""
    optimizers = [getattr(agent, name, None) for name in ("optimizer", "actor_optimizer", "critic_optimizer")]
    optimizers.append(getattr(agent, "alpha_optimizer", None))
    return {round(group["lr"], 12) for opt in optimizers if opt is not None for group in opt.param_groups}


@pytest.mark.parametrize("name", ["dqn", "sac", "td3", "ddpg"])
def test_linear_learning_rate_follows_env_steps(name: str) -> None:
    agent = build(name, lr=1e-3, lr_schedule="linear")
    agent.on_progress(0, 1000)
    assert learning_rates(agent) == {1e-3}
    agent.on_progress(250, 1000)
    assert learning_rates(agent) == {7.5e-4}  # every optimiser, three quarters left
    agent.on_progress(1000, 1000)
    assert learning_rates(agent) == {0.0}
    constant = build(name, lr=1e-3)
    constant.on_progress(500, 1000)
    assert learning_rates(constant) == {1e-3}
    with pytest.raises(ValueError, match=r"agent\.lr_schedule must be one of .* got 'cosine'"):
        build(name, lr_schedule="cosine")


@pytest.mark.parametrize("name", ["dqn", "sac", "td3", "ddpg"])
def test_activation_is_used_and_checked(name: str) -> None:
    agent = build(name, activation="tanh")
    nets = [getattr(agent, n) for n in ("q_net", "actor", "critics") if hasattr(agent, n)]
    layers = [type(m) for net in nets for m in net.modules()]
    assert nn.Tanh in layers and nn.ReLU not in layers
    with pytest.raises(ValueError, match=r"agent\.activation must be one of .* got 'swish'"):
        build(name, activation="swish")


def linear_widths(module: nn.Module) -> list[int]:
    return [m.out_features for m in module.modules() if isinstance(m, nn.Linear)]


@pytest.mark.parametrize("name", ["sac", "td3", "ddpg"])
def test_critics_get_their_own_widths(name: str) -> None:
    agent = build(name, qf_hidden_sizes=(32, 16))
    assert linear_widths(agent.critics[0]) == [32, 16, 1]
    assert linear_widths(agent.actor)[0] == 8  # the actor keeps hidden_sizes


def test_ppo_value_net_gets_its_own_widths_and_log_std_init_ortho_init_apply() -> None:
    torch.manual_seed(0)
    agent = PPO(BOX_OBS, BOX, PPOConfig(hidden_sizes=(8,), vf_hidden_sizes=(32, 32), log_std_init=-2.0))
    assert linear_widths(agent.net.pi_torso) == [8] and linear_widths(agent.net.vf_torso) == [32, 32]
    assert torch.all(agent.net.pi_head.log_std == -2.0)
    # SB3's orthogonal init gives the policy head gain 0.01; torch's default init is far larger
    ortho = agent.net.pi_head.linear.weight.abs().max().item()
    plain = PPO(BOX_OBS, BOX, PPOConfig(hidden_sizes=(8,), ortho_init=False)).net.pi_head.linear.weight
    assert ortho < 0.02 < plain.abs().max().item()
    with pytest.raises(ValueError, match="share_torso=true needs one torso"):
        PPO(BOX_OBS, BOX, PPOConfig(hidden_sizes=(8,), vf_hidden_sizes=(16,), share_torso=True))


def test_a_wrapper_given_as_target_and_kwargs_builds() -> None:
    # the make_env docstring's promise: {_target_: ..., kwargs} without _partial_ (Hydra must not call it bare)
    wrapper = "{_target_:gymnasium.wrappers.ClipReward,min_reward:-0.5,max_reward:0.5}"
    cfg = compose_train(["env=Pendulum", f"env.wrappers=[{wrapper}]"])
    env = build_env(cfg)
    env.reset(seed=0)
    _, reward, *_ = env.step(env.action_space.sample())
    assert -0.5 <= reward[0] <= 0.5
    assert "ClipReward" in str(env.envs[0])  # type: ignore[attr-defined]
    # the older spelling with _partial_ still works
    cfg = compose_train(["env=Pendulum", f"env.wrappers=[{wrapper[:-1]},_partial_:true}}]"])
    assert "ClipReward" in str(build_env(cfg).envs[0])  # type: ignore[attr-defined]


def test_jax_twins_refuse_the_knobs_they_lack() -> None:
    pytest.importorskip("jax")
    from cardio.agents.jax.sac import SACJax, SACJaxConfig

    with pytest.raises(ValueError, match=r"SAC \(JAX\) does not implement agent\.use_sde=True"):
        SACJax(BOX_OBS, BOX, SACJaxConfig(use_sde=True))
    SACJax(BOX_OBS, BOX, SACJaxConfig(hidden_sizes=(8,)))  # the defaults build

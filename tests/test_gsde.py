"""gSDE (Raffin et al. 2021): with a fixed noise matrix the action is a function of the state; the density is the
diagonal Gaussian whose variance is sum_f z_f^2 sigma_fa^2; PPO/A2C/SAC redraw the matrices as SB3 does."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from cardio.agents.a2c import A2C, A2CConfig
from cardio.agents.heads import SquashedGaussianHead, StateDependentNoiseHead
from cardio.agents.ppo import PPO, PPOConfig
from cardio.agents.sac import SAC, SACConfig

BOX = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
OBS = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)


def test_fixed_matrix_makes_the_action_a_function_of_the_state() -> None:
    torch.manual_seed(0)
    head = StateDependentNoiseHead(features_dim=3, action_dim=2, log_std_init=-1.0)
    head.resample(1)
    z = torch.tensor([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [0.5, -1.0, 0.0]])
    first, again = head(z).sample(), head(z).sample()
    torch.testing.assert_close(first, again)  # same matrix, same state: same action
    torch.testing.assert_close(first[0], first[1])  # two rows in the same state agree too
    assert not torch.allclose(first[0], first[2])  # another state, another action
    # the noise is z @ (eps * sigma), linear in the state's features
    torch.testing.assert_close(first - head.linear(z), z @ (head.eps[0] * head.std()))
    head.resample(1)
    assert not torch.allclose(head(z).sample(), first)  # a new matrix, new noise


def test_log_prob_is_the_gaussian_with_state_dependent_variance() -> None:
    torch.manual_seed(1)
    head = StateDependentNoiseHead(features_dim=3, action_dim=2, log_std_init=-0.5)
    with torch.no_grad():
        head.log_std.copy_(torch.tensor([[-0.5, 0.0], [0.2, -1.0], [0.0, 0.3]]))
    z = torch.tensor([[1.0, -2.0, 0.5]])
    action = torch.tensor([[0.3, -0.7]])
    dist = head(z)
    # by hand: var_a = sum_f z_f^2 sigma_fa^2, then the sum over a of log N(action_a; mean_a, var_a)
    sigma = np.exp(head.log_std.detach().numpy())
    zf = z.numpy()[0]
    mean = dist.mean.detach().numpy()[0]
    expected = 0.0
    for a in range(2):
        var = float(np.sum(zf**2 * sigma[:, a] ** 2)) + 1e-6
        expected += -0.5 * (action[0, a].item() - mean[a]) ** 2 / var - 0.5 * math.log(2 * math.pi * var)
    assert dist.log_prob(action).item() == pytest.approx(expected, rel=1e-5)


def test_one_matrix_per_env_while_acting() -> None:
    torch.manual_seed(2)
    head = StateDependentNoiseHead(features_dim=3, action_dim=2)
    head.resample(2)
    z = torch.ones(2, 3)
    noise = head(z).noise
    assert not torch.allclose(noise[0], noise[1])  # same state, two envs, two matrices


def test_squashed_sde_log_prob_adds_the_tanh_correction() -> None:
    torch.manual_seed(3)
    head = SquashedGaussianHead(3, 2, use_sde=True, log_std_init=-1.0)
    assert head.sde is not None
    head.sde.resample(1)
    z = torch.tensor([[0.5, 1.0, -1.0]])
    action, log_prob = head(z)
    again, _ = head(z)
    torch.testing.assert_close(action, again)
    dist = head.sde(z)
    u = dist.sample()
    torch.testing.assert_close(action, torch.tanh(u))
    expected = dist.log_prob(u) - torch.log(1 - torch.tanh(u) ** 2).sum(-1)
    torch.testing.assert_close(log_prob, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("cls", [PPO, A2C])
def test_on_policy_agents_redraw_every_sde_sample_freq_steps_and_each_rollout(cls) -> None:
    torch.manual_seed(4)
    config = (PPOConfig if cls is PPO else A2CConfig)(use_sde=True, sde_sample_freq=3, log_std_init=-1.0)
    agent = cls(OBS, BOX, config, seed=0)
    obs = np.array([[0.1, 0.2, 0.3], [0.1, 0.2, 0.3]], dtype=np.float32)
    actions = [agent.act(obs, explore=True) for _ in range(4)]
    raw = [extras["raw_action"] for _, extras in actions]
    np.testing.assert_allclose(raw[0], raw[1])
    np.testing.assert_allclose(raw[1], raw[2])  # steps 0-2 share the matrices
    assert not np.allclose(raw[2], raw[3])  # step 3: redrawn
    assert not np.allclose(raw[0][0], raw[0][1])  # two envs, two matrices
    # the stored log_prob is the density of the raw action under the networks that will evaluate it
    log_prob, _, _ = agent.net.evaluate(torch.as_tensor(obs), torch.as_tensor(raw[0]))
    np.testing.assert_allclose(actions[0][1]["log_prob"], log_prob.detach().numpy(), rtol=1e-5)
    # deterministic actions ignore the noise
    np.testing.assert_allclose(agent.act(obs, explore=False)[0], agent.act(obs, explore=False)[0])


def test_sac_sde_redraws_per_update_and_explores_at_warmup_when_asked() -> None:
    torch.manual_seed(5)
    agent = SAC(OBS, BOX, SACConfig(use_sde=True, use_sde_at_warmup=True, hidden_sizes=(16,)), seed=0)
    assert agent.act_at_warmup
    assert not SAC(OBS, BOX, SACConfig(use_sde=True), seed=0).act_at_warmup
    obs = np.zeros((1, 3), dtype=np.float32) + 0.5
    a0, a1 = agent.act(obs, explore=True)[0], agent.act(obs, explore=True)[0]
    np.testing.assert_allclose(a0, a1)  # sde_sample_freq=-1: one matrix for the whole collection phase
    batch = {
        "obs": np.random.default_rng(0).normal(size=(8, 3)).astype(np.float32),
        "action": np.zeros((8, 2), np.float32),
        "reward": np.ones(8, np.float32),
        "next_obs": np.zeros((8, 3), np.float32),
        "terminated": np.zeros(8, bool),
    }
    metrics = agent.update(batch)
    assert np.isfinite(metrics["train/actor_loss"])
    assert agent.actor.head.sde is not None and agent.actor.head.sde.log_std.grad is not None  # sigma learns
    assert not np.allclose(agent.act(obs, explore=True)[0], a0)  # a new phase draws new matrices


def test_sac_features_learn_through_the_noise_and_ppo_features_do_not() -> None:
    # SB3 builds SAC's gSDE with learn_features=True (the actor loss reaches the torso through z @ W and the
    # variance) and PPO/A2C's with learn_features=False (the features are detached there).
    torch.manual_seed(6)
    z = torch.tensor([[0.5, 1.0, -1.0], [0.2, -0.3, 0.8]], requires_grad=True)
    squashed = SquashedGaussianHead(3, 2, use_sde=True, log_std_init=-1.0)
    assert squashed.sde is not None
    squashed.sde.resample(1)
    dist = squashed.sde(z)
    (grad,) = torch.autograd.grad((dist.noise.sum() + dist.log_std.sum()), z)
    assert grad.abs().sum() > 0  # noise and variance reach the features
    plain = StateDependentNoiseHead(3, 2, log_std_init=-1.0)
    plain.resample(1)
    dist = plain(z)
    (grad,) = torch.autograd.grad(dist.noise.sum() + dist.log_std.sum() + 0 * z.sum(), z)
    assert grad.abs().sum() == 0  # PPO/A2C: detached

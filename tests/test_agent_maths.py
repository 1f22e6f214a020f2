"""The maths of SAC, TD3, DDPG, PPO, A2C and DRQN, pinned by behaviour: each test fails on a plausible bug.

Networks are set by hand where a quantity must be known exactly (a critic that outputs a constant, or its action
input), so a TD target or a loss can be written down and compared. Each test names the bug it catches.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from cardio.agents.a2c import A2CConfig
from cardio.agents.ddpg import DDPGConfig
from cardio.agents.drqn import DRQNConfig
from cardio.agents.ppo import PPOConfig
from cardio.agents.sac import SACConfig, q_values
from cardio.agents.td3 import TD3Config

OBS1 = gym.spaces.Box(-10.0, 10.0, shape=(1,), dtype=np.float32)
ACT1 = gym.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
TINY_ALPHA = 1e-6  # SAC's entropy term made negligible where a test is about the critic


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny networks: one thread is fastest, and on a busy machine several fight for the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def continuous(name: str, **kw):
    """SAC / TD3 / DDPG on a 1-d observation and a 1-d action in [-1, 1]."""
    torch.manual_seed(0)
    if name == "SAC":
        return SACConfig(**{"hidden_sizes": (16,), "ent_coef": TINY_ALPHA, **kw}).build(OBS1, ACT1, seed=0)
    if name == "TD3":
        return TD3Config(**{"hidden_sizes": (16,), **kw}).build(OBS1, ACT1, seed=0)
    return DDPGConfig(**{"hidden_sizes": (16,), **kw}).build(OBS1, ACT1, seed=0)


@torch.no_grad()
def set_critic(critic: nn.Sequential, constant: float = 0.0, action_slope: float = 0.0) -> None:
    """Make a one-hidden-layer critic output ``constant + action_slope * a`` exactly, for input ``[obs, a]``.

    The hidden ReLU units 0 and 1 carry ``relu(a)`` and ``relu(-a)``; the output is their difference.
    """
    critic = getattr(critic, "q", critic)  # SAC/TD3/DDPG critics: the observation encoder, then this MLP
    first, last = critic[0], critic[-1]
    first.weight.zero_()
    first.bias.zero_()
    first.weight[0, -1], first.weight[1, -1] = 1.0, -1.0
    last.weight.zero_()
    last.weight[0, 0], last.weight[0, 1] = action_slope, -action_slope
    last.bias.fill_(constant)


def batch(size: int = 32, reward: float = 0.0, terminated: bool = False, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "obs": rng.normal(size=(size, 1)).astype(np.float32),
        "next_obs": rng.normal(size=(size, 1)).astype(np.float32),
        "action": rng.uniform(-1, 1, size=(size, 1)).astype(np.float32),
        "reward": np.full(size, reward, np.float32),
        "terminated": np.full(size, terminated),
        "truncated": np.zeros(size, bool),
        "weight": np.ones(size, np.float32),  # makes update() return td_error = |td_target - Q1|
    }


def td_targets(agent, b: dict[str, np.ndarray]) -> np.ndarray:
    """The TD targets of one update, read through ``td_error`` with the first online critic zeroed."""
    set_critic(agent.critics[0], 0.0)
    return agent.update(b)["td_error"]


# ------------------------------------------------------------------------------------------ truncation
def fit_constant_chain(name: str, truncation_is_terminal: bool, gamma: float = 0.8, length: int = 8) -> float:
    """A critic on one state, reward 1 whatever the action, the episode cut by a time limit every ``length`` steps.

    Every one of 8 actions appears at every step of the episode, so each action's value is the same sum:
    bootstrapping through the cut gives Q = 1 / (1 - gamma) = 5; treating the cut as terminal, the squared loss
    settles where 7 bootstrapped samples and 1 terminal one balance, Q = 1 / (1 - 7 gamma / 8) = 3.33.
    """
    agent = continuous(name, gamma=gamma, lr=1e-2, tau=1.0)
    ends = np.repeat(np.arange(length) == length - 1, 8)  # [length * 8]: the last step of the episode, all actions
    b = {
        "obs": np.ones((8 * length, 1), np.float32),
        "next_obs": np.ones((8 * length, 1), np.float32),
        "action": np.tile(np.linspace(-1, 1, 8, dtype=np.float32), length)[:, None],
        "reward": np.ones(8 * length, np.float32),
        "terminated": ends if truncation_is_terminal else np.zeros(8 * length, bool),
        "truncated": ends,
    }
    for _ in range(400):  # SAC from a fresh init is still moving at 200 (5.17)
        agent.update(b)
    with torch.no_grad():
        grid = torch.linspace(-1, 1, 9)[:, None]
        return float(q_values(agent.critics, torch.ones(9, 1), grid).mean())


@pytest.mark.parametrize("name", ["SAC", "TD3", "DDPG"])
def test_infinite_horizon_value_bootstraps_through_truncation(name: str) -> None:
    assert fit_constant_chain(name, truncation_is_terminal=False) == pytest.approx(5.0, abs=0.1)
    # negative control: truncation treated as termination lands on 1 / (1 - 0.7) instead
    assert fit_constant_chain(name, truncation_is_terminal=True) == pytest.approx(1 / 0.3, abs=0.15)


# ------------------------------------------------------------------------------------------ twin critics
@pytest.mark.parametrize("name", ["SAC", "TD3"])
def test_td_target_takes_the_minimum_of_the_twin_target_critics(name: str) -> None:
    agent = continuous(name, gamma=0.5, target_policy_noise=0.0) if name == "TD3" else continuous(name, gamma=0.5)
    set_critic(agent.target_critics[0], 1.0)
    set_critic(agent.target_critics[1], 5.0)
    targets = td_targets(agent, batch(reward=0.0))
    np.testing.assert_allclose(targets, 0.5 * 1.0, atol=1e-3)  # max would give 2.5, the mean 1.5


def test_sac_actor_maximises_the_minimum_of_the_twin_critics() -> None:
    agent = continuous("SAC", lr=1e-12)  # critics stay put during the update
    set_critic(agent.critics[0], 1.0)
    set_critic(agent.critics[1], 5.0)
    actor_loss = agent.update(batch())["train/actor_loss"]
    assert actor_loss == pytest.approx(-1.0, abs=1e-3)  # alpha * log_prob is ~0; -max would be -5


# ------------------------------------------------------------------------------------------ Polyak
@pytest.mark.parametrize("name", ["SAC", "TD3", "DDPG"])
def test_targets_move_towards_the_online_networks_by_tau(name: str) -> None:
    agent = continuous(name, lr=0.0, tau=0.1, **({"policy_delay": 1} if name == "TD3" else {}))
    pairs = [(agent.target_critics, agent.critics)]
    if name != "SAC":
        pairs.append((agent.target_actor, agent.actor))
    with torch.no_grad():
        for target, _ in pairs:
            for p in target.parameters():
                p.add_(1.0)  # target = online + 1 everywhere
    before = [[p.clone() for p in target.parameters()] for target, _ in pairs]
    agent.update(batch())  # lr = 0: the online networks do not move
    for (target, online), old in zip(pairs, before, strict=True):
        for t, o, t0 in zip(target.parameters(), online.parameters(), old, strict=True):
            torch.testing.assert_close(t, t0 + 0.1 * (o - t0))  # 10 % of the way; the wrong direction goes 90 %


# ------------------------------------------------------------------------------------------ TD3 specifics
def test_td3_target_smoothing_noise_is_clipped() -> None:
    agent = continuous("TD3", gamma=1.0, target_policy_noise=10.0, target_noise_clip=0.3)
    for target in agent.target_critics:
        set_critic(target, 0.0, action_slope=1.0)  # Q'(s, a) = a: the TD target is the smoothed target action
    with torch.no_grad():
        for p in agent.target_actor.parameters():
            p.zero_()  # target action tanh(0) = 0, so the target is the clipped noise itself
    targets = td_targets(agent, batch(size=512))
    assert targets.max() <= 0.3 + 1e-5  # unclipped noise of std 10 would reach the action bound 1
    assert np.mean(targets > 0.29) > 0.9  # and it is there: almost every draw hits the clip
    # negative control: smoothing off leaves the target action at 0
    agent = continuous("TD3", gamma=1.0, target_policy_noise=0.0)
    for target in agent.target_critics:
        set_critic(target, 0.0, action_slope=1.0)
    with torch.no_grad():
        for p in agent.target_actor.parameters():
            p.zero_()
    np.testing.assert_allclose(td_targets(agent, batch()), 0.0, atol=1e-6)


def test_td3_actor_and_targets_move_only_every_policy_delay_updates() -> None:
    agent = continuous("TD3", policy_delay=3)
    b = batch(reward=1.0)

    def snapshot() -> list[torch.Tensor]:
        nets = (agent.actor, agent.target_actor, agent.target_critics)
        return [p.detach().clone() for net in nets for p in net.parameters()]

    for update in range(1, 7):
        before = snapshot()
        agent.update(b)
        moved = [not torch.equal(a, c) for a, c in zip(before, snapshot(), strict=True)]
        assert all(moved) if update % 3 == 0 else not any(moved), f"update {update}"


# ------------------------------------------------------------------------------------------ SAC temperature
def test_sac_target_entropy_defaults_to_minus_the_action_dimension() -> None:
    box3 = gym.spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32)
    assert SACConfig(hidden_sizes=(8,)).build(OBS1, box3).target_entropy == -3.0
    assert SACConfig(hidden_sizes=(8,), target_entropy=0.5).build(OBS1, box3).target_entropy == 0.5


@pytest.mark.parametrize(("target_entropy", "rises"), [(5.0, True), (-10.0, False)])
def test_sac_temperature_rises_when_entropy_is_below_the_target(target_entropy: float, rises: bool) -> None:
    """A 1-d squashed Gaussian has entropy at most log 2 = 0.69: a target of 5 is above it, -10 below."""
    agent = continuous("SAC", ent_coef="auto", target_entropy=target_entropy)
    b = batch()
    alphas = [agent.update(b)["train/ent_coef"] for _ in range(10)]
    assert (alphas[-1] > alphas[0]) == rises


# ------------------------------------------------------------------------------------------ actor signs
@pytest.mark.parametrize("name", ["SAC", "TD3", "DDPG"])
def test_actor_moves_towards_the_better_action_of_a_one_step_bandit(name: str) -> None:
    """Reward -(a - 0.5)^2, every step terminal: the critic learns it and the actor must go to a = 0.5."""
    agent = continuous(name, lr=3e-3, **({"ent_coef": 0.01} if name == "SAC" else {}))
    rng = np.random.default_rng(0)
    for _ in range(400):
        action = rng.uniform(-1, 1, size=(64, 1)).astype(np.float32)
        agent.update(
            {
                "obs": np.zeros((64, 1), np.float32),
                "next_obs": np.zeros((64, 1), np.float32),
                "action": action,
                "reward": -((action[:, 0] - 0.5) ** 2),
                "terminated": np.ones(64, bool),
            }
        )
    greedy, _ = agent.act(np.zeros((1, 1), np.float32), explore=False)
    assert abs(float(greedy[0, 0]) - 0.5) < 0.15  # a flipped actor loss runs to -1


# ------------------------------------------------------------------------------------------ PPO
DISCRETE2 = gym.spaces.Discrete(2)


def ppo_rollout(agent, advantages: np.ndarray, log_prob_shift: float) -> tuple[dict[str, np.ndarray], torch.Tensor]:
    """A ``[T, 1]`` rollout with gamma = 0 so each advantage is ``reward - value``: rewards are the advantages,
    stored values 0; the stored log-probs are the current ones minus ``log_prob_shift`` (ratio = e^shift)."""
    T = len(advantages)
    obs = np.random.default_rng(0).normal(size=(T, 1, 1)).astype(np.float32)
    action, _ = agent.act(obs[:, 0], explore=True)
    with torch.no_grad():
        log_prob, _, value = agent.net.evaluate(torch.as_tensor(obs[:, 0]), torch.as_tensor(action))
    rollout = {
        "obs": obs,
        "next_obs": obs,
        "action": action.reshape(T, 1),
        "reward": advantages.reshape(T, 1).astype(np.float32),
        "terminated": np.ones((T, 1), bool),
        "truncated": np.zeros((T, 1), bool),
        "log_prob": (log_prob.numpy() - log_prob_shift).reshape(T, 1).astype(np.float32),
        "value": np.zeros((T, 1), np.float32),
    }
    return rollout, value


def ppo(**kw):
    torch.manual_seed(0)
    base = {"lr": 0.0, "gamma": 0.0, "n_epochs": 1, "batch_size": 8, "hidden_sizes": (8,), "clip_range": 0.2}
    return PPOConfig(**{**base, **kw}).build(OBS1, DISCRETE2, seed=0)


@pytest.mark.parametrize(("advantage", "expected"), [(1.0, -1.2), (-1.0, np.e)])
def test_ppo_surrogate_is_the_clipped_minimum_of_the_new_over_old_ratio(advantage: float, expected: float) -> None:
    """Ratio new/old = e. A > 0: the objective is clipped at 1 + 0.2 (loss -1.2); A < 0: the pessimistic bound
    keeps the unclipped e * A (loss e). old/new would give -0.37 and 0.8; max instead of min -e and 1.2."""
    agent = ppo(normalize_advantage=False)
    rollout, _ = ppo_rollout(agent, np.full(8, advantage), log_prob_shift=1.0)
    metrics = agent.update(rollout)
    assert metrics["train/policy_gradient_loss"] == pytest.approx(expected, rel=1e-4)
    assert metrics["train/clip_fraction"] == 1.0


def test_ppo_normalises_advantages_per_minibatch() -> None:
    advantages = np.arange(8, dtype=np.float64) ** 2  # mean 17.5: unnormalised the loss would be far from 0
    normalised = (advantages - advantages.mean()) / (advantages.std(ddof=1) + 1e-8)
    shift = 0.1  # ratio e^0.1 = 1.105, inside the clip range: loss = -mean(ratio * A_norm) = 0
    agent = ppo(normalize_advantage=True)
    rollout, _ = ppo_rollout(agent, advantages, log_prob_shift=shift)
    assert agent.update(rollout)["train/policy_gradient_loss"] == pytest.approx(0.0, abs=1e-5)
    # shift 1: ratio e, clipped at 1.2 where A > 0, e kept where A < 0
    rollout, _ = ppo_rollout(agent, advantages, log_prob_shift=1.0)
    expected = -np.mean(np.minimum(normalised * np.e, normalised * 1.2))
    assert agent.update(rollout)["train/policy_gradient_loss"] == pytest.approx(expected, rel=1e-4)
    # negative control: without normalisation the loss is -1.2 * mean(A)
    agent = ppo(normalize_advantage=False)
    rollout, _ = ppo_rollout(agent, advantages, log_prob_shift=1.0)
    assert agent.update(rollout)["train/policy_gradient_loss"] == pytest.approx(-1.2 * advantages.mean(), rel=1e-4)


@pytest.mark.parametrize("clip_vf", [None, 0.01])
def test_ppo_value_loss_clips_around_the_rollout_values_when_set(clip_vf: float | None) -> None:
    agent = ppo(clip_range_vf=clip_vf)
    returns = np.linspace(-2.0, 2.0, 8)  # gamma 0, stored values 0: returns = rewards
    rollout, value = ppo_rollout(agent, returns, log_prob_shift=0.0)
    predicted = value.numpy() if clip_vf is None else np.clip(value.numpy(), -clip_vf, clip_vf)
    assert np.abs(value.numpy()).max() > 0.02  # the clip does bind for some states
    expected = np.mean((predicted - returns) ** 2)
    assert agent.update(rollout)["train/value_loss"] == pytest.approx(expected, rel=1e-4)


# ------------------------------------------------------------------------------------------ A2C
@pytest.mark.parametrize("name", ["A2C", "PPO"])
def test_policy_gradient_raises_the_probability_of_the_better_arm(name: str) -> None:
    """Two-armed bandit, arm 1 pays 1 and arm 0 pays 0, one step per episode: P(arm 1) must rise from 1/2."""
    torch.manual_seed(0)
    if name == "A2C":
        agent = A2CConfig(lr=1e-2, gamma=0.0, hidden_sizes=(8,), use_rms_prop=False).build(OBS1, DISCRETE2, seed=0)
    else:
        agent = PPOConfig(lr=1e-2, gamma=0.0, hidden_sizes=(8,), n_epochs=2, batch_size=32).build(OBS1, DISCRETE2)
    obs = np.zeros((32, 1), np.float32)

    def p_better() -> float:
        with torch.no_grad():
            return float(agent.net.pi_head(agent.net.pi_torso(torch.zeros(1, 1))).logits.exp()[0, 1])

    start = p_better()
    for _ in range(30):
        action, extras = agent.act(obs, explore=True)
        agent.update(
            {
                "obs": obs[:, None],
                "next_obs": obs[:, None],
                "action": action[:, None],
                "reward": action[:, None].astype(np.float32),
                "terminated": np.ones((32, 1), bool),
                "truncated": np.zeros((32, 1), bool),
                "log_prob": extras["log_prob"][:, None],
                "value": extras["value"][:, None],
            }
        )
    assert start == pytest.approx(0.5, abs=0.01) and p_better() > 0.8  # a flipped sign drives it towards 0


# ------------------------------------------------------------------------------------------ DRQN
def test_drqn_trains_from_the_hidden_state_warmed_over_the_burn_in_steps() -> None:
    torch.manual_seed(0)
    burn_in, seq_len = 3, 4
    agent = DRQNConfig(hidden_sizes=(8,), gru_size=8, burn_in=burn_in).build(
        gym.spaces.Box(-5, 5, (2,), np.float32), DISCRETE2, seed=0
    )
    rng = np.random.default_rng(0)
    L = burn_in + seq_len
    b = {
        "obs": rng.normal(size=(4, L, 2)).astype(np.float32) * 3,
        "next_obs": rng.normal(size=(4, L, 2)).astype(np.float32),
        "action": rng.integers(0, 2, size=(4, L)),
        "reward": np.ones((4, L), np.float32),
        "terminated": np.zeros((4, L), bool),
        "mask": np.ones((4, L), bool),
    }
    calls: list[tuple[torch.Tensor, torch.Tensor]] = []
    hook = agent.q_net.register_forward_pre_hook(lambda module, args: calls.append((args[0], args[1].clone())))
    with torch.no_grad():
        _, hidden = agent.q_net(torch.as_tensor(b["obs"][:, :burn_in]), torch.zeros(4, 8))
    warmed = hidden[:, -1]  # the state after the burn-in steps, from zeros
    calls.clear()
    agent.update(b)
    hook.remove()
    starts = [h for obs, h in calls if obs.shape[1] == seq_len]
    assert starts, "no call over the trained steps"
    torch.testing.assert_close(starts[0], warmed)  # a loss started from zeros would fail here
    assert warmed.abs().max() > 0.1  # negative control: the warmed state is far from the zero state

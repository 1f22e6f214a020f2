"""Every reduction over a critic ensemble and every target-network update of the torch agents, pinned by value.

The critics are made constant (all weights zero, the output bias ``c_i``), so each ensemble member's Q is known
and the members differ: with ``Q_i = (3, 1, 2)`` the minimum (1) is neither the first member (3), the maximum (3)
nor the mean (2), so one number tells the reductions apart. Targets are set a known distance from the online
networks to check the direction and the size of a Polyak step, and to tell a hard sync from its reverse.
``bench/mutants.py`` applies each wrong variant (``min -> max``, ``min -> mean``, the reversed update...) and
checks that a test here or beside it fails.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from cardio.agents.cql import CQLConfig
from cardio.agents.dqn import DQNConfig
from cardio.agents.drqn import DRQNConfig
from cardio.agents.iql import IQLConfig
from cardio.agents.networks import hard_update, soft_update
from cardio.agents.sac import SACConfig
from cardio.agents.td3 import TD3Config
from cardio.agents.td3_bc import TD3BCConfig

OBS = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
ACT = gym.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
SPREAD = (3.0, 1.0, 2.0)  # min 1, first 3, max 3, mean 2: each reduction gives its own number
TINY_ALPHA = 1e-6  # SAC's entropy term made negligible where a test reads a Q


@pytest.fixture(autouse=True)
def one_torch_thread() -> Any:
    """Tiny networks: one thread is fastest, and on a busy machine several fight for the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def build(name: str, **knobs: Any) -> Any:
    """SAC, TD3, TD3+BC or IQL with three critics of one hidden layer of 8 on a 2-d observation, 1-d action."""
    torch.manual_seed(0)
    knobs = {"hidden_sizes": (8,), "n_critics": 3, **knobs}
    if name == "SAC":
        return SACConfig(**{"ent_coef": TINY_ALPHA, **knobs}).build(OBS, ACT, seed=0)
    if name == "TD3":
        return TD3Config(**{"target_policy_noise": 0.0, "policy_delay": 1, **knobs}).build(OBS, ACT, seed=0)
    if name == "TD3BC":
        return TD3BCConfig(**{"target_policy_noise": 0.0, "policy_delay": 1, **knobs}).build(OBS, ACT, seed=0)
    return IQLConfig(**knobs).build(OBS, ACT, seed=0)


@torch.no_grad()
def constant(critics: nn.ModuleList, values: Sequence[float]) -> None:
    """Make critic ``i`` output ``values[i]`` for every (observation, action): every weight and bias zero but
    the output bias."""
    for critic, value in zip(critics, values, strict=True):
        for p in critic.parameters():
            p.zero_()
        output = [m for m in critic.modules() if isinstance(m, nn.Linear)][-1]  # the scalar head
        output.bias.fill_(value)


def batch(size: int = 16, terminated: bool = False) -> dict[str, np.ndarray]:
    """Random observations and actions, reward 0; ``weight`` makes SAC and TD3 return ``td_error``."""
    rng = np.random.default_rng(0)
    return {
        "obs": rng.uniform(-1, 1, (size, 2)).astype(np.float32),
        "next_obs": rng.uniform(-1, 1, (size, 2)).astype(np.float32),
        "action": rng.uniform(-1, 1, (size, 1)).astype(np.float32),
        "reward": np.zeros(size, np.float32),
        "terminated": np.full(size, terminated),
        "truncated": np.zeros(size, bool),
        "weight": np.ones(size, np.float32),
    }


# ------------------------------------------------------------------------------------------ TD and value targets
@pytest.mark.parametrize("name", ["SAC", "TD3"])
def test_td_target_is_the_minimum_over_the_target_critics_not_the_first_max_or_mean(name: str) -> None:
    """Pins the clipped double-Q target ``r + gamma * min_i Q'_i(s', a')``: target critics (3, 1, 2) and
    gamma 0.5 give 0.5 (the first target critic or the max would give 1.5, the mean 1.0). The first online
    critic is zeroed, so ``td_error = |target - Q_1|`` is the target itself."""
    agent = build(name, gamma=0.5, lr=1e-12)
    constant(agent.target_critics, SPREAD)
    constant(agent.critics, (0.0, 0.0, 0.0))
    np.testing.assert_allclose(agent.update(batch())["td_error"], 0.5, atol=1e-4)


def test_iql_value_target_is_the_minimum_over_the_target_critics() -> None:
    """Pins IQL's ``u = min_i Q'_i(s, a) - V(s)``: with V zeroed and target critics (3, 1, 2) the advantage is
    1 on every sample (max 3, mean 2), and the value's expectile loss ``0.7 * 1^2`` (u > 0) reads the same
    minimum (max 6.3, mean 2.8)."""
    agent = build("IQL", lr=1e-12)
    constant(agent.target_critics, SPREAD)
    with torch.no_grad():
        for p in agent.value.parameters():
            p.zero_()
    metrics = agent.update(batch())
    assert metrics["train/adv_mean"] == pytest.approx(1.0, abs=1e-5)
    assert metrics["train/value_loss"] == pytest.approx(0.7, abs=1e-5)


# ------------------------------------------------------------------------------------------ actor losses
def test_sac_actor_loss_reads_the_minimum_of_the_online_critics() -> None:
    """Pins SAC's actor objective ``alpha log pi - min_i Q_i(s, pi(s))``: with online critics (3, 1, 2) and
    alpha ~ 0 the loss is -1 (first or max: -3, mean: -2). lr ~ 0, so the critic step before it moves nothing."""
    agent = build("SAC", lr=1e-12)
    constant(agent.critics, SPREAD)
    assert agent.update(batch())["train/actor_loss"] == pytest.approx(-1.0, abs=1e-3)


def test_td3_actor_loss_reads_the_first_critic_only() -> None:
    """Pins TD3's deterministic policy gradient through ``Q_1`` alone (Fujimoto et al. 2018, SB3): with critics
    (3, 1, 2) the loss is ``-Q_1 = -3`` (the minimum would give -1, the mean -2), both through
    :meth:`~cardio.agents.td3.TD3.actor_loss` and as ``train/actor_loss`` of an update."""
    agent = build("TD3", lr=1e-12)
    constant(agent.critics, SPREAD)
    obs, action = torch.rand(16, 2) * 2 - 1, torch.rand(16, 1) * 2 - 1
    loss, _ = agent.actor_loss(obs, action)
    assert loss.item() == pytest.approx(-3.0, abs=1e-6)
    assert agent.update(batch())["train/actor_loss"] == pytest.approx(-3.0, abs=1e-4)


def test_td3_bc_lambda_and_q_term_read_the_first_critic_only() -> None:
    """Pins TD3+BC's ``lambda = alpha / mean |Q_1(s, pi(s))|`` (Fujimoto & Gu 2021): with critics (3, 1, 2),
    lambda = 2.5 / 3 (the minimum would give 2.5, the mean 1.25), and the loss is ``-lambda * Q_1 + BC``."""
    agent = build("TD3BC")
    constant(agent.critics, SPREAD)
    obs, action = torch.rand(16, 2) * 2 - 1, torch.rand(16, 1) * 2 - 1
    loss, parts = agent.actor_loss(obs, action)
    assert parts["train/lmbda"] == pytest.approx(2.5 / 3.0, rel=1e-6)
    assert loss.item() == pytest.approx(-2.5 / 3.0 * 3.0 + parts["train/bc_loss"], rel=1e-5)


# ------------------------------------------------------------------------------------------ critic losses
@pytest.mark.parametrize(("name", "half"), [("SAC", 0.5), ("TD3", 1.0), ("IQL", 1.0)])
def test_critic_loss_sums_the_members_losses(name: str, half: float) -> None:
    """Pins ``train/critic_loss`` as the *sum* over the ensemble of each critic's MSE (SB3's; SAC's carries
    SB3's 0.5): terminal transitions with reward 0 make the TD target 0, so critics (3, 1, 2) give
    ``half * (9 + 1 + 4)``; a mean over the members would give a third of it."""
    agent = build(name, lr=1e-12)
    constant(agent.critics, SPREAD)
    assert agent.update(batch(terminated=True))["train/critic_loss"] == pytest.approx(half * 14.0, rel=1e-5)


# ------------------------------------------------------------------------------------------ Polyak
def test_soft_update_moves_the_target_by_tau_and_leaves_the_source() -> None:
    """Pins ``target <- (1 - tau) target + tau source`` on known values: target 0, source 1, tau 0.25 gives
    0.25 (tau and 1 - tau swapped: 0.75), and the source stays 1 (reversed, the source would move to 0.75)."""
    target, source = nn.Linear(2, 2), nn.Linear(2, 2)
    with torch.no_grad():
        for t, s in zip(target.parameters(), source.parameters(), strict=True):
            t.fill_(0.0)
            s.fill_(1.0)
    soft_update(target, source, 0.25)
    for t, s in zip(target.parameters(), source.parameters(), strict=True):
        torch.testing.assert_close(t, torch.full_like(t, 0.25))
        torch.testing.assert_close(s, torch.ones_like(s))


def test_hard_update_copies_the_source_into_the_target() -> None:
    """Pins ``target <- source``: target 0, source 1 gives target 1 and leaves the source at 1 (reversed, both
    would end at 0)."""
    target, source = nn.Linear(2, 2), nn.Linear(2, 2)
    with torch.no_grad():
        for t, s in zip(target.parameters(), source.parameters(), strict=True):
            t.fill_(0.0)
            s.fill_(1.0)
    hard_update(target, source)
    for t, s in zip(target.parameters(), source.parameters(), strict=True):
        torch.testing.assert_close(t, torch.ones_like(t))
        torch.testing.assert_close(s, torch.ones_like(s))


@pytest.mark.parametrize("name", ["SAC", "TD3", "IQL"])
def test_every_target_moves_towards_its_online_network_by_tau(name: str) -> None:
    """Pins each agent's Polyak step on each of its target networks: with lr 0 (online networks fixed) and every
    target parameter one above its online one, one update leaves every target exactly ``1 - tau`` above it
    (tau 0.1: 0.9 above; reversed direction or 1 - tau: 0.1 above, or the online network moved)."""
    agent = build(name, lr=0.0, tau=0.1)
    pairs = [(agent.target_critics, agent.critics)]
    if name == "TD3":
        pairs.append((agent.target_actor, agent.actor))
    online_before = [[p.detach().clone() for p in online.parameters()] for _, online in pairs]
    with torch.no_grad():
        for target, online in pairs:
            for t, o in zip(target.parameters(), online.parameters(), strict=True):
                t.copy_(o + 1.0)
    agent.update(batch())
    for (target, online), before in zip(pairs, online_before, strict=True):
        for t, o, o0 in zip(target.parameters(), online.parameters(), before, strict=True):
            torch.testing.assert_close(o, o0)  # lr 0: the online network did not move
            torch.testing.assert_close(t, o0 + 0.9)


# ------------------------------------------------------------------------------------------ hard syncs
def q_network_agent(name: str) -> Any:
    """DQN, CQL (DQN's sync) or DRQN on a 2-d observation, 2 actions, a sync every 10 steps."""
    torch.manual_seed(0)
    actions = gym.spaces.Discrete(2)
    if name == "DRQN":
        return DRQNConfig(hidden_sizes=(8,), gru_size=8, target_update_interval=10).build(OBS, actions, seed=0)
    config = CQLConfig if name == "CQL" else DQNConfig
    return config(hidden_sizes=(8,), target_update_interval=10).build(OBS, actions, seed=0)


@pytest.mark.parametrize("name", ["DQN", "CQL", "DRQN"])
def test_hard_sync_copies_the_online_network_into_the_target(name: str) -> None:
    """Pins the sync's direction ``target <- online``: with every target parameter one above the online one,
    the sync at step 10 leaves the target equal to the online network and the online network where it was
    (reversed, the online network would take the target's values and learning would restart from them)."""
    agent = q_network_agent(name)
    online = [p.detach().clone() for p in agent.q_net.parameters()]
    with torch.no_grad():
        for t, o in zip(agent.target_net.parameters(), online, strict=True):
            t.copy_(o + 1.0)
    agent.on_progress(9, 100)  # not due yet: the target keeps its values
    for t, o in zip(agent.target_net.parameters(), online, strict=True):
        torch.testing.assert_close(t, o + 1.0)
    agent.on_progress(10, 100)
    for t, q, o in zip(agent.target_net.parameters(), agent.q_net.parameters(), online, strict=True):
        torch.testing.assert_close(q, o)
        torch.testing.assert_close(t, o)

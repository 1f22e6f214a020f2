"""BC, CQL, TD3+BC and IQL: each test fails on a plausible bug in the algorithm it pins (named in its docstring).

Datasets here are hand-made batches whose answers can be worked out: a one-state bandit (every transition
terminates, so Q(s, a) is the reward) and labelled random observations for cloning.
"""

from __future__ import annotations

from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
import torch

from cardio.agents.bc import BCConfig
from cardio.agents.cql import CQLConfig
from cardio.agents.iql import IQLConfig, expectile_loss
from cardio.agents.networks import obs_to_tensor
from cardio.agents.sac import q_values
from cardio.agents.td3_bc import TD3BCConfig

OBS2 = gym.spaces.Box(-5.0, 5.0, shape=(2,), dtype=np.float32)
WIDE = gym.spaces.Box(-2.0, 2.0, shape=(1,), dtype=np.float32)  # Pendulum's torque bounds
UNIT = gym.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)


@pytest.fixture(autouse=True)
def one_thread() -> None:
    torch.set_num_threads(1)  # tiny networks: more threads only contend on a shared machine


def bandit(actions: np.ndarray, rewards: np.ndarray) -> dict[str, np.ndarray]:
    """One-state bandit batch: obs constant, every step terminates (Q(s, a) = r exactly)."""
    n = len(rewards)
    obs = np.ones((n, 2), np.float32)
    return {
        "obs": obs,
        "action": actions,
        "reward": rewards.astype(np.float32),
        "next_obs": obs,
        "terminated": np.ones(n, bool),
        "truncated": np.zeros(n, bool),
    }


# ------------------------------------------------------------------------------------------------------ BC
def test_bc_discrete_clones_a_labelled_policy_and_fails_on_shuffled_labels() -> None:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(512, 2)).astype(np.float32)
    labels = (obs[:, 0] > 0).astype(np.int64)
    accuracies = []
    for action in (labels, rng.permutation(labels)):  # the second is the negative control
        agent = BCConfig(lr=1e-2, hidden_sizes=(32,)).build(OBS2, gym.spaces.Discrete(2), seed=0)
        for _ in range(150):
            agent.update({"obs": obs, "action": action})
        test_obs = rng.normal(size=(256, 2)).astype(np.float32)
        accuracies.append(float((agent.act(test_obs, explore=False)[0] == (test_obs[:, 0] > 0)).mean()))
    assert accuracies[0] > 0.95
    assert accuracies[1] < 0.75


def test_bc_continuous_reaches_actions_beyond_one_in_the_envs_bounds() -> None:
    """Bug pinned: regressing the raw env action onto the tanh output (no mapping to [-1, 1]) cannot reach 1.5
    and rescales the output to 2.0."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(256, 2)).astype(np.float32)
    action = np.where(obs[:, :1] > 0, 1.5, -0.5).astype(np.float32)
    agent = BCConfig(lr=1e-2, hidden_sizes=(32,)).build(OBS2, WIDE, seed=0)
    for _ in range(300):
        metrics = agent.update({"obs": obs, "action": action})
    predicted = agent.act(obs, explore=False)[0]
    assert predicted.shape == action.shape and predicted.dtype == np.float32
    assert np.abs(predicted - action).mean() < 0.15
    assert metrics["train/loss"] == metrics["train/action_mse"] < 0.02


# ------------------------------------------------------------------------------------------------------ CQL
def test_cql_loss_is_the_logsumexp_minus_the_data_actions_q() -> None:
    torch.manual_seed(0)
    agent = CQLConfig(hidden_sizes=(8,), cql_alpha=1.0).build(OBS2, gym.spaces.Discrete(3), seed=0)
    batch = bandit(np.array([0, 1, 2, 1]), np.zeros(4))
    with torch.no_grad():
        q_all = agent.q_net(torch.as_tensor(batch["obs"]))
    expected = (torch.logsumexp(q_all, 1) - q_all[torch.arange(4), torch.as_tensor(batch["action"])]).mean()
    metrics = agent.update(batch)
    assert metrics["train/cql_loss"] == pytest.approx(expected.item(), rel=1e-5)
    assert metrics["train/loss"] == pytest.approx(metrics["train/td_loss"] + metrics["train/cql_loss"], rel=1e-5)


def q_gap_after_training(alpha: float) -> float:
    """Q of the only action the data takes minus the best Q of the two it never takes."""
    torch.manual_seed(0)
    agent = CQLConfig(lr=1e-2, hidden_sizes=(16,), cql_alpha=alpha, target_update_interval=1).build(
        OBS2, gym.spaces.Discrete(3), seed=0
    )
    batch = bandit(np.zeros(32, np.int64), np.ones(32))
    for step in range(200):
        agent.on_progress(step, 200)
        agent.update(batch)
    with torch.no_grad():
        q = agent.q_net(torch.ones(1, 2))[0]
    return float(q[0] - q[1:].max())


def test_cql_penalty_pushes_unseen_actions_below_the_datas() -> None:
    """Bug pinned: the penalty's sign (``q - logsumexp``) pushes the unseen actions' Q up, above the data's."""
    assert q_gap_after_training(alpha=1.0) > 1.0
    assert q_gap_after_training(alpha=1.0) > q_gap_after_training(alpha=0.0) + 1.0


def test_cql_learns_from_dict_observations_through_dqns_path() -> None:
    """Bug pinned: CQL reading observations its own way (``to_tensor(obs).flatten(1)``) breaks on the Dict
    observations its config (DQN's) accepts; through DQN's path it learns the penalty's gap on them too."""
    space = gym.spaces.Dict({"pos": gym.spaces.Box(-5.0, 5.0, (2,), np.float32), "flag": gym.spaces.Discrete(3)})
    torch.manual_seed(0)
    agent = CQLConfig(lr=1e-2, hidden_sizes=(16,), target_update_interval=1).build(
        space, gym.spaces.Discrete(3), seed=0
    )
    batch = bandit(np.zeros(32, np.int64), np.ones(32))
    batch["obs"] = batch["next_obs"] = {"pos": batch["obs"], "flag": np.ones(32, np.int64)}
    for step in range(200):
        agent.on_progress(step, 200)
        metrics = agent.update(batch)
    assert all(np.isfinite(v) for v in metrics.values())
    with torch.no_grad():
        q = agent.q_net(obs_to_tensor({"pos": np.ones((1, 2), np.float32), "flag": np.ones(1, np.int64)}, "cpu"))[0]
    assert float(q[0] - q[1:].max()) > 1.0


# ------------------------------------------------------------------------------------------------------ TD3+BC
def test_td3_bc_update_steps_the_actor_on_its_own_loss() -> None:
    """Bug pinned: TD3's update stepping the actor on TD3's loss (``-Q``) rather than the subclass's
    :meth:`actor_loss`: TD3+BC's parts must come back on every ``policy_delay``-th update, and with ``alpha = 0``
    the actor must clone the data's action (0.5) instead of climbing Q."""
    torch.manual_seed(0)
    agent = TD3BCConfig(lr=1e-2, hidden_sizes=(16,), alpha=0.0).build(OBS2, UNIT, seed=0)
    batch = bandit(np.full((32, 1), 0.5, np.float32), np.linspace(-1.0, 1.0, 32))
    first, second = agent.update(batch), agent.update(batch)
    assert "train/bc_loss" not in first and {"train/bc_loss", "train/lmbda", "train/actor_loss"} <= second.keys()
    for _ in range(200):
        agent.update(batch)
    action = agent.act(np.ones((1, 2), np.float32), explore=False)[0]
    assert action[0, 0] == pytest.approx(0.5, abs=0.05)


def td3_bc_actor_grads(scale: float, bias: float = 0.0) -> tuple[list[torch.Tensor], dict[str, float]]:
    """Actor-loss gradients with the first critic's output multiplied by ``scale`` and shifted by ``bias``."""
    torch.manual_seed(0)
    agent = TD3BCConfig(hidden_sizes=(16,)).build(OBS2, UNIT, seed=0)
    with torch.no_grad():
        last = agent.critics[0].q[-1]
        last.weight.mul_(scale)
        last.bias.mul_(scale).add_(bias)
    obs = torch.randn(64, 2)
    action = torch.rand(64, 1) * 2 - 1
    loss, parts = agent.actor_loss(obs, action)
    grads = torch.autograd.grad(loss, list(agent.actor.parameters()))
    return list(grads), parts


def test_td3_bc_actor_gradient_does_not_depend_on_the_scale_of_q() -> None:
    """Bugs pinned: no normalisation (lambda = alpha), or lambda not detached (then a positive Q's term has
    no gradient at all: alpha * mean Q / mean |Q| is constant)."""
    base, _ = td3_bc_actor_grads(scale=1.0, bias=5.0)  # Q > 0 on the batch
    scaled, _ = td3_bc_actor_grads(scale=100.0, bias=500.0)
    for g, h in zip(base, scaled, strict=True):
        torch.testing.assert_close(g, h, rtol=1e-3, atol=1e-5)
    # the Q term contributes: the gradient differs from the BC term's alone
    torch.manual_seed(0)
    agent = TD3BCConfig(hidden_sizes=(16,)).build(OBS2, UNIT, seed=0)
    obs, action = torch.randn(64, 2), torch.rand(64, 1) * 2 - 1
    bc_only = torch.autograd.grad(((agent.actor(obs) - action) ** 2).mean(), list(agent.actor.parameters()))
    assert max((g - b).abs().max().item() for g, b in zip(base, bc_only, strict=True)) > 1e-3


def test_td3_bc_lambda_is_alpha_over_the_mean_absolute_q() -> None:
    """Bug pinned: dividing by mean Q instead of mean |Q| flips the actor's objective when Q < 0 (Pendulum)."""
    _, parts = td3_bc_actor_grads(scale=1.0, bias=-50.0)  # Q < 0 everywhere on the batch
    torch.manual_seed(0)
    agent = TD3BCConfig(hidden_sizes=(16,)).build(OBS2, UNIT, seed=0)
    with torch.no_grad():
        agent.critics[0].q[-1].bias.add_(-50.0)
        obs = torch.randn(64, 2)
        q = q_values(agent.critics[:1], obs, agent.actor(obs))[0]
    assert (q < 0).all()
    assert parts["train/lmbda"] == pytest.approx(2.5 / q.abs().mean().item(), rel=1e-4)
    assert parts["train/lmbda"] > 0


# ------------------------------------------------------------------------------------------------------ IQL
def test_expectile_loss_weighs_targets_above_the_prediction_by_the_expectile() -> None:
    diff = torch.tensor([2.0, -2.0])  # target - prediction
    assert expectile_loss(diff[:1], 0.9).item() == pytest.approx(0.9 * 4)
    assert expectile_loss(diff[1:], 0.9).item() == pytest.approx(0.1 * 4)


def trained_iql(updates: int = 400, **knobs: float) -> tuple[object, dict[str, float]]:
    """IQL on the bandit: half the data takes a = -1 (reward 0), half a = +1 (reward 1)."""
    torch.manual_seed(0)
    config = IQLConfig(lr=3e-3, hidden_sizes=(32,), tau=1.0, **knobs)  # type: ignore[arg-type]
    agent = config.build(OBS2, UNIT, seed=0)
    actions = np.repeat([[-1.0], [1.0]], 32, axis=0).astype(np.float32)
    batch = bandit(actions, (actions[:, 0] > 0).astype(np.float32))
    for _ in range(updates):
        metrics = agent.update(batch)
    return agent, metrics


def test_iql_value_is_the_upper_expectile_and_the_policy_follows_the_advantage() -> None:
    """Bugs pinned: the expectile's side (V -> 0.1, the lower expectile of {0, 1}, instead of 0.9) and the
    weighting's direction (exp(-beta A) clones the worse action)."""
    agent, metrics = trained_iql(expectile=0.9)
    # The 0.9-expectile of Q in {0, 1} (equal shares) solves 0.9 (1 - v) = 0.1 v: v = 0.9.
    assert metrics["train/v_mean"] == pytest.approx(0.9, abs=0.08)
    action = agent.act(np.ones((1, 2), np.float32), explore=False)[0]  # type: ignore[attr-defined]
    assert action[0, 0] > 0.5
    # negative control: at expectile 0.5 the value is the plain mean of Q, 0.5
    _, mean_metrics = trained_iql(expectile=0.5)
    assert mean_metrics["train/v_mean"] == pytest.approx(0.5, abs=0.08)


def test_iql_learns_in_the_envs_action_bounds() -> None:
    """Bug pinned: dataset actions fed to the policy's log-likelihood in env units instead of ``[-1, 1]`` (on
    Pendulum's ``[-2, 2]`` the tanh mean cannot reach a data action of 1.5 and the policy stops at the bound, 2)."""
    torch.manual_seed(0)
    agent = IQLConfig(lr=3e-3, hidden_sizes=(32,), tau=1.0, expectile=0.9).build(OBS2, WIDE, seed=0)
    actions = np.repeat([[-1.5], [1.5]], 32, axis=0).astype(np.float32)
    batch = bandit(actions, (actions[:, 0] > 0).astype(np.float32))
    for _ in range(400):
        agent.update(batch)
    action = agent.act(np.ones((1, 2), np.float32), explore=False)[0]
    assert action[0, 0] == pytest.approx(1.5, abs=0.15)


def test_iql_advantage_weights_are_clipped() -> None:
    """Bug pinned: without the clip, exp(beta A) overflows to inf at a large beta and the losses turn non-finite."""
    _, metrics = trained_iql(updates=5, expectile=0.9, beta=1e4)
    assert metrics["train/weight_max"] == pytest.approx(100.0)
    assert all(np.isfinite(v) for v in metrics.values())


def test_iql_bootstraps_through_truncation() -> None:
    """Bug pinned: a target that stops at the time limit (Pendulum's only episode end is ``truncated``). One
    state, reward 1 whatever the action, the episode cut every 8 steps: bootstrapping through the cut gives
    Q = V = 1 / (1 - 0.8) = 5; treating the cut as terminal settles where 7 bootstrapped samples and 1 terminal
    one balance, about 3.3 (the negative control)."""

    def fitted_q(truncation_is_terminal: bool) -> float:
        torch.manual_seed(0)
        agent = IQLConfig(lr=1e-2, hidden_sizes=(16,), tau=1.0, gamma=0.8).build(OBS2, UNIT, seed=0)
        ends = np.repeat(np.arange(8) == 7, 8)
        b = bandit(np.tile(np.linspace(-1, 1, 8, dtype=np.float32), 8)[:, None], np.ones(64))
        b["truncated"], b["terminated"] = ends, ends if truncation_is_terminal else np.zeros(64, bool)
        for _ in range(400):
            metrics = agent.update(b)
        return metrics["train/q_mean"]

    assert fitted_q(truncation_is_terminal=False) == pytest.approx(5.0, abs=0.25)
    assert fitted_q(truncation_is_terminal=True) == pytest.approx(1 / (1 - 7 * 0.8 / 8), abs=0.25)


def test_iql_scales_rewards_by_the_datasets_return_range() -> None:
    """Bugs pinned: the scale inverted or ignored. Returns spanning 1400 scale rewards by 1000 / 1400, so a
    terminal reward of 1 is learnt as Q = 0.714; ``normalize_rewards=False`` (the control) learns Q = 1."""
    returns = SimpleNamespace(episode_returns=np.array([-1500.0, -600.0, -100.0]))
    fitted = []
    for normalize in (True, False):
        torch.manual_seed(0)
        agent = IQLConfig(lr=1e-2, hidden_sizes=(16,), normalize_rewards=normalize).build(OBS2, UNIT, seed=0)
        agent.on_dataset(returns)  # type: ignore[attr-defined]
        batch = bandit(np.zeros((32, 1), np.float32), np.ones(32))
        for _ in range(300):
            metrics = agent.update(batch)  # type: ignore[attr-defined]
        fitted.append(metrics["train/q_mean"])
    assert fitted[0] == pytest.approx(1000 / 1400, abs=0.03)
    assert fitted[1] == pytest.approx(1.0, abs=0.03)


def test_iql_policy_learning_rate_decays_on_a_cosine() -> None:
    """Bug pinned: a linear decay, or a schedule that never reaches the optimiser (3e-4 at the start, 1.5e-4 at
    half the run, 0 at its end)."""
    agent = IQLConfig().build(OBS2, UNIT, seed=0)
    seen = []
    for updates in (0, 250, 500, 1000):
        agent.on_progress(updates, 1000)  # type: ignore[attr-defined]
        seen.append(agent.policy_optimizer.param_groups[0]["lr"])  # type: ignore[attr-defined]
    np.testing.assert_allclose(seen, [3e-4, 3e-4 * (1 + np.cos(np.pi / 4)) / 2, 1.5e-4, 0.0], atol=1e-12)
    assert agent.value_optimizer.param_groups[0]["lr"] == 3e-4  # type: ignore[attr-defined]

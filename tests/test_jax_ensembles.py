"""The JAX twins' critic-ensemble reductions and target updates, pinned by value (torch's: tests/test_ensembles.py).

The same construction as the torch file: constant critics ``Q_i = (3, 1, 2)`` (all weights zero, the output bias
``c_i``) make the minimum, the first member, the maximum and the mean four different numbers, and targets set one
above the online parameters show the direction and size of a Polyak step and of a hard sync. These check each
twin on its own, not against the torch twin (tests/test_jax_parity.py), so a bug copied into both twins fails
here too. Skipped as a whole when the ``jax`` extra is not installed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

jax = pytest.importorskip("jax")

from cardio.agents.jax.dqn import DQNJaxConfig  # noqa: E402
from cardio.agents.jax.networks import polyak  # noqa: E402
from cardio.agents.jax.sac import SACJaxConfig  # noqa: E402

OBS = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
ACT = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
SPREAD = (3.0, 1.0, 2.0)  # min 1, first 3, max 3, mean 2


def sac(**knobs: Any) -> Any:
    """A JAX SAC with three critics of one hidden layer of 8, alpha ~ 0, lr ~ 0 (the critic step before the
    actor's moves nothing); one configuration, so every test shares one compiled update."""
    config = {"hidden_sizes": (8,), "n_critics": 3, "ent_coef": 1e-6, "lr": 1e-12, "gamma": 0.5, "tau": 0.1}
    return SACJaxConfig(**{**config, **knobs}).build(OBS, ACT, seed=0)


def constant(critics: Any, values: Sequence[float]) -> Any:
    """A stacked critics pytree (leading ``[n_critics]`` axis) whose critic ``i`` outputs ``values[i]``."""
    layers = [{"w": np.zeros_like(layer["w"]), "b": np.zeros_like(layer["b"])} for layer in critics]
    layers[-1]["b"] = np.asarray(values, np.float32).reshape(-1, 1)
    return layers


def batch(size: int = 16, terminated: bool = False) -> dict[str, np.ndarray]:
    """Random observations and actions, reward 0; ``weight`` makes the update return ``td_error``."""
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


def test_sac_jax_td_target_is_the_minimum_over_the_target_critics() -> None:
    """Pins ``r + gamma * (min_i Q'_i(s', a') - alpha log pi)``: target critics (3, 1, 2), gamma 0.5, alpha ~ 0
    give 0.5 (first or max: 1.5, mean: 1.0); the first online critic is zero, so ``td_error`` is the target."""
    agent = sac()
    critics = agent.state.critics
    agent.state = agent.state._replace(critics=constant(critics, (0, 0, 0)), target_critics=constant(critics, SPREAD))
    np.testing.assert_allclose(agent.update(batch())["td_error"], 0.5, atol=1e-4)


def test_sac_jax_actor_loss_reads_the_minimum_of_the_critics() -> None:
    """Pins the actor objective ``alpha log pi - min_i Q_i(s, pi(s))``: critics (3, 1, 2) give -1 (first or max:
    -3, mean: -2)."""
    agent = sac()
    agent.state = agent.state._replace(critics=constant(agent.state.critics, SPREAD))
    assert agent.update(batch())["train/actor_loss"] == pytest.approx(-1.0, abs=1e-3)


def test_sac_jax_critic_loss_sums_the_members_losses() -> None:
    """Pins ``train/critic_loss = 0.5 * sum_i MSE_i`` (the torch twin's and SB3's): terminal transitions with
    reward 0 make the target 0, so critics (3, 1, 2) give 0.5 * 14 = 7 (a mean over the members: 7 / 3)."""
    agent = sac()
    agent.state = agent.state._replace(critics=constant(agent.state.critics, SPREAD))
    assert agent.update(batch(terminated=True))["train/critic_loss"] == pytest.approx(7.0, rel=1e-5)


def test_polyak_moves_the_target_by_tau_towards_the_online_tree() -> None:
    """Pins ``target <- (1 - tau) target + tau online`` on known values: target 0, online 1, tau 0.25 gives
    0.25 (tau and 1 - tau swapped: 0.75; a step away from the online tree: -0.25)."""
    moved = polyak({"w": np.zeros(3, np.float32)}, {"w": np.ones(3, np.float32)}, 0.25)
    np.testing.assert_allclose(np.asarray(moved["w"]), 0.25, atol=1e-7)


def test_sac_jax_target_critics_move_towards_the_online_ones_by_tau() -> None:
    """Pins the update's Polyak step: with lr ~ 0 and every target parameter one above the online one, one update
    leaves the target 1 - tau = 0.9 above it and the online critics where they were (reversed, the online critics
    would move; with 1 - tau the target would end 0.1 above)."""
    agent = sac()
    online = agent.state.critics
    agent.state = agent.state._replace(target_critics=jax.tree.map(lambda x: x + 1.0, online))
    agent.update(batch())
    after = jax.tree.leaves(agent.state.critics), jax.tree.leaves(agent.state.target_critics)
    for o0, o, t in zip(jax.tree.leaves(online), *after, strict=True):
        np.testing.assert_allclose(np.asarray(o), o0, atol=1e-6)
        np.testing.assert_allclose(np.asarray(t), o0 + 0.9, atol=1e-6)


def test_dqn_jax_hard_sync_copies_the_online_parameters_into_the_target() -> None:
    """Pins the sync's direction ``target <- online``: with every target parameter one above the online one,
    the sync at step 10 leaves the target equal to the online parameters and those where they were (reversed,
    the online parameters would take the target's)."""
    agent = DQNJaxConfig(hidden_sizes=(8,), target_update_interval=10).build(OBS, gym.spaces.Discrete(2), seed=0)
    online = agent.state.params
    agent.state = agent.state._replace(target_params=jax.tree.map(lambda x: x + 1.0, online))
    agent.on_progress(9, 100)  # not due yet
    for o0, t in zip(jax.tree.leaves(online), jax.tree.leaves(agent.state.target_params), strict=True):
        np.testing.assert_allclose(np.asarray(t), o0 + 1.0)
    agent.on_progress(10, 100)
    after = jax.tree.leaves(agent.state.params), jax.tree.leaves(agent.state.target_params)
    for o0, o, t in zip(jax.tree.leaves(online), *after, strict=True):
        np.testing.assert_allclose(np.asarray(o), o0)
        np.testing.assert_allclose(np.asarray(t), o0)


@pytest.mark.parametrize("twin", ["torch", "jax"])
def test_dqn_target_syncs_restart_with_the_step_counter(twin: str) -> None:
    """After ``Runner.reset()`` the step counter restarts at 0 and the target syncs must restart with it: steps
    1000, then 50, 100, 200 with a sync every 100 give one sync at 100 and one at 200 (the JAX twin used to wait
    until step 1100, its target frozen meanwhile). Both twins are asked the same."""
    if twin == "torch":
        pytest.importorskip("torch")
        from cardio.agents.dqn import DQNConfig

        agent: Any = DQNConfig(hidden_sizes=(8,), target_update_interval=100).build(OBS, gym.spaces.Discrete(2))
    else:
        agent = DQNJaxConfig(hidden_sizes=(8,), target_update_interval=100).build(OBS, gym.spaces.Discrete(2))
    for steps in (1000, 50, 100, 200):
        agent.on_progress(steps, 10_000)
    assert agent.target_syncs == 2

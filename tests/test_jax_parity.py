"""JAX twins against torch twins: the same weights and batch give the same losses, targets and next weights.

The strongest cheap check that a twin has the same maths: any sign, discount, clip or order difference shows.
Sampling noise is the one thing the twins cannot share (torch's generator vs a JAX key), so SAC's is set to 0 on
both sides (the policy's mean), and PPO's minibatch is the whole rollout (a shuffle only reorders it).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest

jax = pytest.importorskip("jax")
torch = pytest.importorskip("torch")

from cardio.agents.dqn import DQNConfig  # noqa: E402
from cardio.agents.jax.dqn import DQNJaxConfig  # noqa: E402
from cardio.agents.jax.ppo import PPOJaxConfig  # noqa: E402
from cardio.agents.jax.sac import SACJaxConfig  # noqa: E402
from cardio.agents.ppo import PPOConfig  # noqa: E402
from cardio.agents.sac import SACConfig  # noqa: E402

BOX4 = gym.spaces.Box(-1.0, 1.0, shape=(4,), dtype=np.float32)
RNG = np.random.default_rng(0)


@pytest.fixture(autouse=True)
def fresh_rng() -> None:
    """Every test draws the same data and torch weights whichever tests ran before it in this process (``-k``,
    xdist, reruns): the DQN test's check that the clip was active depends on both. A torch agent's ``seed`` seeds
    its own draws, not its initialisation, which follows torch's global generator (seeded by the run)."""
    global RNG
    RNG = np.random.default_rng(0)
    torch.manual_seed(0)


def layers(module: Any) -> list[dict[str, Any]]:
    """A torch module's Linear layers as the JAX ``[{"w": [in, out], "b": [out]}]`` pytree."""
    found = [m for m in module.modules() if isinstance(m, torch.nn.Linear)]
    return [
        {"w": jax.numpy.asarray(m.weight.detach().numpy().T), "b": jax.numpy.asarray(m.bias.detach().numpy())}
        for m in found
    ]


def assert_same_layers(torch_module: Any, jax_params: list[dict[str, Any]], atol: float = 1e-5) -> None:
    for mine, theirs in zip(layers(torch_module), jax_params, strict=True):
        for k in ("w", "b"):
            np.testing.assert_allclose(np.asarray(theirs[k]), np.asarray(mine[k]), atol=atol)


def transitions(batch: int, obs_dim: int, action: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "obs": RNG.standard_normal((batch, obs_dim)).astype(np.float32),
        "next_obs": RNG.standard_normal((batch, obs_dim)).astype(np.float32),
        "action": action,
        "reward": RNG.standard_normal(batch).astype(np.float32),
        "terminated": RNG.random(batch) < 0.3,
        "truncated": RNG.random(batch) < 0.2,
    }


@pytest.mark.parametrize("double_q", [False, True])
def test_dqn_twins_agree_on_loss_target_and_step(double_q: bool) -> None:
    config = dict(lr=1e-2, hidden_sizes=(16, 16), max_grad_norm=0.1, double_q=double_q)
    torch_dqn = DQNConfig(**config).build(BOX4, gym.spaces.Discrete(3), seed=0)
    jax_dqn = DQNJaxConfig(**config).build(BOX4, gym.spaces.Discrete(3), seed=1)
    with torch.no_grad():  # a target net unlike the online one, so the target really comes from it
        for p in torch_dqn.target_net.parameters():
            p.mul_(0.5)
    jax_dqn.state = jax_dqn.state._replace(params=layers(torch_dqn.q_net), target_params=layers(torch_dqn.target_net))
    jax_dqn.state = jax_dqn.state._replace(opt_state=jax_dqn.tx.init(jax_dqn.state.params))
    batch = transitions(64, 4, RNG.integers(0, 3, 64))
    grad_norms = []
    for _ in range(3):  # three steps: Adam's moments and the clip take part
        mine, theirs = torch_dqn.update(batch), jax_dqn.update(batch)
        for key in ("train/loss", "train/q_mean", "train/td_target_mean", "train/grad_norm"):
            assert theirs[key] == pytest.approx(mine[key], rel=1e-4, abs=1e-5), key
        grad_norms.append(mine["train/grad_norm"])
    assert max(grad_norms) > 0.1  # the clip was active on at least one of the compared steps
    assert_same_layers(torch_dqn.q_net, jax_dqn.state.params)


def test_sac_twins_agree_on_losses_and_step(monkeypatch: pytest.MonkeyPatch) -> None:
    action_space = gym.spaces.Box(np.array([-2.0, 0.0], np.float32), np.array([2.0, 1.0], np.float32))
    config = dict(lr=1e-2, hidden_sizes=(16, 16), tau=0.1)
    torch_sac = SACConfig(**config).build(BOX4, action_space, seed=0)
    jax_sac = SACJaxConfig(**config).build(BOX4, action_space, seed=1)
    critics = [layers(q) for q in torch_sac.critics]
    stacked = jax.tree.map(lambda *x: jax.numpy.stack(x), *critics)
    actor = {
        "torso": layers(torch_sac.actor.torso),
        "mean": layers(torch_sac.actor.head.mean),
        "log_std": layers(torch_sac.actor.head.log_std),
    }
    tx = jax_sac.tx
    jax_sac.state = jax_sac.state._replace(
        actor=actor, critics=stacked, target_critics=stacked, actor_opt=tx.init(actor), critic_opt=tx.init(stacked)
    )
    # the policy's noise is 0 on both sides: u = mean
    monkeypatch.setattr(torch, "randn_like", torch.zeros_like)
    monkeypatch.setattr(jax.random, "normal", lambda key, shape: jax.numpy.zeros(shape))
    jax_sac._update = jax.jit(jax_sac.update_fn)  # retraced under the patch
    batch = transitions(32, 4, RNG.uniform([-2, 0], [2, 1], (32, 2)).astype(np.float32))
    for _ in range(3):
        mine, theirs = torch_sac.update(batch), jax_sac.update(batch)
        assert set(mine) == set(theirs)
        for key in mine:
            assert theirs[key] == pytest.approx(mine[key], rel=1e-4, abs=1e-5), key
    assert_same_layers(torch_sac.actor.torso, jax_sac.state.actor["torso"])
    for q, i in zip(torch_sac.target_critics, range(2), strict=True):
        assert_same_layers(q, jax.tree.map(lambda x, i=i: x[i], jax_sac.state.target_critics))


@pytest.mark.parametrize("action_space", [gym.spaces.Discrete(3), gym.spaces.Box(-1.0, 1.0, (2,), np.float32)])
def test_ppo_twins_agree_on_the_clipped_objective(action_space: gym.Space) -> None:
    T, N = 16, 2
    config = dict(lr=1e-3, n_epochs=1, batch_size=T * N, hidden_sizes=(8,), clip_range_vf=0.3, ent_coef=0.01)
    torch_ppo = PPOConfig(**config).build(BOX4, action_space, seed=0)
    jax_ppo = PPOJaxConfig(**config).build(BOX4, action_space, seed=1)
    net = torch_ppo.net
    params = {
        "pi_torso": layers(net.pi_torso),
        "vf_torso": layers(net.vf_torso),
        "pi_head": layers(net.pi_head),
        "vf_head": layers(net.vf_head),
    }
    if isinstance(action_space, gym.spaces.Box):
        params["log_std"] = jax.numpy.asarray(net.pi_head.log_std.detach().numpy())
    jax_ppo.state = jax_ppo.state._replace(params=params, opt_state=jax_ppo.tx.init(params))
    if isinstance(action_space, gym.spaces.Discrete):
        action = RNG.integers(0, 3, (T, N))
    else:
        action = RNG.standard_normal((T, N, 2)).astype(np.float32)
    rollout = {
        "obs": RNG.standard_normal((T, N, 4)).astype(np.float32),
        "next_obs": RNG.standard_normal((T, N, 4)).astype(np.float32),
        "action": action,
        "reward": RNG.standard_normal((T, N)).astype(np.float32),
        "terminated": RNG.random((T, N)) < 0.1,
        "truncated": RNG.random((T, N)) < 0.1,
        "log_prob": RNG.normal(-1.5, 0.5, (T, N)).astype(np.float32),  # ratios far from 1: the clip is active
        "value": RNG.standard_normal((T, N)).astype(np.float32),
    }
    mine, theirs = torch_ppo.update(rollout), jax_ppo.update(rollout)
    assert set(mine) == set(theirs)
    for key in mine:
        assert theirs[key] == pytest.approx(mine[key], rel=1e-4, abs=1e-5), key
    assert 0.0 < mine["train/clip_fraction"] < 1.0
    assert_same_layers(net.pi_torso, jax_ppo.state.params["pi_torso"])

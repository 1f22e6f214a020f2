"""The torch speed levers (docs/performance.md) change no number: each is checked bit for bit against the way
it replaced."""

from __future__ import annotations

import copy

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from cardio.agents.dqn import DQN, DQNConfig
from cardio.agents.networks import hard_update, mlp, soft_update


def test_hard_update_equals_load_state_dict_buffers_included() -> None:
    torch.manual_seed(0)
    source = nn.Sequential(nn.Linear(3, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))
    source(torch.randn(16, 3))  # moves the batch-norm running statistics (buffers) away from their init
    target, reference = copy.deepcopy(source), copy.deepcopy(source)
    for module in (target, reference):
        for p in module.parameters():
            p.data.normal_()
        module[1].running_mean.fill_(7.0)
    hard_update(target, source)
    reference.load_state_dict(source.state_dict())
    for a, b in zip(target.state_dict().values(), reference.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert target[0].weight.data_ptr() != source[0].weight.data_ptr()  # a copy, not shared storage


def test_soft_update_equals_a_loop_of_lerp() -> None:
    torch.manual_seed(0)
    source, target = mlp(3, (16, 16), 2), mlp(3, (16, 16), 2)
    reference = copy.deepcopy(target)
    soft_update(target, source, 0.005)
    with torch.no_grad():
        for t, s in zip(reference.parameters(), source.parameters(), strict=True):
            t.lerp_(s, 0.005)
    for a, b in zip(target.parameters(), reference.parameters(), strict=True):
        assert torch.equal(a, b)
    assert not torch.equal(next(target.parameters()), next(mlp(3, (16, 16), 2).parameters()))


@pytest.mark.parametrize("double_q", [False, True])
def test_dqn_update_with_foreach_clip_gives_the_old_numbers(monkeypatch: pytest.MonkeyPatch, double_q: bool) -> None:
    """Two agents, same seed and batches: the shipped update and one whose clip is the per-tensor loop it
    replaced. Every metric and every weight must come out identical (a small max_grad_norm makes the clip act)."""
    obs_space = gym.spaces.Box(-np.inf, np.inf, (4,), np.float32)
    config = DQNConfig(hidden_sizes=(32, 32), lr=1e-2, max_grad_norm=0.1, double_q=double_q)
    rng = np.random.default_rng(0)
    batches = [
        {
            "obs": rng.standard_normal((16, 4)).astype(np.float32),
            "action": rng.integers(0, 2, 16),
            "reward": rng.standard_normal(16).astype(np.float32),
            "next_obs": rng.standard_normal((16, 4)).astype(np.float32),
            "terminated": rng.random(16) < 0.2,
            "truncated": np.zeros(16, bool),
        }
        for _ in range(5)
    ]
    torch.manual_seed(0)
    shipped = DQN(obs_space, gym.spaces.Discrete(2), config, seed=0)
    new_metrics = [shipped.update(b) for b in batches]

    clip = torch.nn.utils.clip_grad_norm_
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", lambda p, m, foreach=None: clip(p, m, foreach=False))
    torch.manual_seed(0)
    old = DQN(obs_space, gym.spaces.Discrete(2), config, seed=0)
    old_metrics = [old.update(b) for b in batches]

    assert new_metrics == old_metrics
    assert all(m["train/grad_norm"] > 0.1 for m in new_metrics)  # the clip did act
    for a, b in zip(shipped.q_net.parameters(), old.q_net.parameters(), strict=True):
        assert torch.equal(a, b)

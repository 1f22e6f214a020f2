"""DRQN: deep recurrent Q-learning, a GRU Q-network trained on replayed sequences with burn-in.

Hausknecht & Stone 2015, "Deep Recurrent Q-Learning for Partially Observable MDPs" (arXiv:1507.06527); burn-in
from zero state: Kapturowski et al. 2019 (R2D2, "Recurrent Experience Replay in Distributed RL"). For partially
observable tasks, e.g. ``env=CartPoleNoVel`` (velocities hidden). Needs ``buffer=sequence``, whose windows are
``L = burn_in + seq_len`` steps of one env stream with a ``mask`` that is False after the window's first episode
ends; ``burn_in`` here must equal the buffer's.

Legend: B sequences, L window steps, S = L - burn_in trained steps, N envs, D obs width, H GRU width, A actions.

The acting state is the GRU's hidden ``[N, H]`` (see ``initial_state`` in ``cardio/agents/base.py``); each
sampled window starts from a zero state and spends its first ``burn_in`` steps warming it without gradient. The
TD target of step t bootstraps from the GRU advanced one step from ``h_t`` with ``next_obs[t]``, so truncated
episodes bootstrap from their true final observation.

Metrics returned by :meth:`DRQN.update`: ``train/loss`` (masked Huber), ``train/q_mean`` (Q of the taken
actions on trained steps), ``train/grad_norm`` (before clipping), ``rollout/exploration_rate`` (epsilon).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cardio.agents.base import AgentConfig, require_space
from cardio.agents.networks import argmax_random_ties, flat_dim, hard_update, mlp, syncs_due, to_tensor
from cardio.agents.noise import epsilon_greedy, linear_epsilon
from cardio.agents.state import Checkpointable


@dataclass
class DRQNConfig(AgentConfig["DRQN"]):
    """DRQN hyperparameters; the same keys, in the same order, as ``configs/agent/drqn.yaml``."""

    zoo_name: ClassVar[str] = "drqn"
    """Tuned hyperparameters live in ``configs/zoo/drqn/<EnvId>.yaml``."""
    observation_spaces: ClassVar[tuple[type[gym.Space], ...]] = (gym.spaces.Box,)
    """Observation spaces it takes."""
    action_spaces: ClassVar[tuple[type[gym.Space], ...]] = (gym.spaces.Discrete,)
    """Action spaces it takes."""

    lr: float = 1e-3
    """Adam learning rate."""
    gamma: float = 0.99
    """Discount per env step."""
    hidden_sizes: tuple[int, ...] = (64,)
    """Widths of the MLP encoder (ReLU) in front of the GRU."""
    gru_size: int = 64
    """H, the GRU's hidden width (the acting state)."""
    burn_in: int = 0
    """Steps at the start of each sampled window that only warm up the hidden state (the buffer's ``burn_in``)."""
    target_update_interval: int = 1_000
    """Env steps between hard copies of the online network into the target network."""
    exploration_fraction: float = 0.2
    """Fraction of ``total_steps`` over which epsilon decays linearly from initial to final."""
    exploration_initial_eps: float = 1.0
    """Epsilon at step 0."""
    exploration_final_eps: float = 0.05
    """Epsilon after the decay."""
    max_grad_norm: float = 10.0
    """Gradient-norm clip of each optimiser step."""
    double_q: bool = True
    """Double DQN target: pick the next action with the online network, value it with the target network."""

    def agent_class(self) -> type[DRQN]:
        return DRQN


class RecurrentQNet(nn.Module):
    """``obs [B, L, D], h0 [B, H] -> (q [B, L, A], hidden after each step [B, L, H])``."""

    def __init__(self, obs_dim: int, hidden_sizes: tuple[int, ...], gru_size: int, num_actions: int) -> None:
        super().__init__()
        self.encoder = nn.Sequential(*list(mlp(obs_dim, hidden_sizes, 1))[:-1], *([nn.ReLU()] * bool(hidden_sizes)))
        self.gru = nn.GRU(hidden_sizes[-1] if hidden_sizes else obs_dim, gru_size, batch_first=True)
        self.head = nn.Linear(gru_size, num_actions)

    def forward(self, obs: torch.Tensor, h0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden, _ = self.gru(self.encoder(obs), h0.unsqueeze(0).contiguous())
        return self.head(hidden), hidden

    def step_from(self, obs: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """Q after one more step from every hidden state: ``obs [B, S, D], hidden [B, S, H] -> q [B, S, A]``."""
        b, s = obs.shape[:2]
        q, _ = self(obs.reshape(b * s, 1, -1), hidden.reshape(b * s, -1))
        return q.reshape(b, s, -1)


class DRQN(Checkpointable):
    """Recurrent Q-learning agent; see the module docstring for the papers, the target and the metric names."""

    checkpointed = ("q_net", "target_net", "optimizer", "epsilon", "target_syncs", "rng")

    def __init__(
        self,
        observation_space: gym.Space,
        action_space: gym.Space,
        config: DRQNConfig | None = None,
        *,
        device: str = "cpu",
        seed: int | None = None,
        env_id: str | None = None,
    ) -> None:
        require_space("DRQN", "action", action_space, DRQNConfig.action_spaces, env_id)
        require_space("DRQN", "observation", observation_space, DRQNConfig.observation_spaces, env_id)
        self.config = c = config or DRQNConfig()
        self.device = torch.device(device)
        self.rng = np.random.default_rng(seed)  # epsilon draws and argmax tie-breaks
        self.num_actions = int(action_space.n)  # type: ignore[attr-defined]
        self.q_net = RecurrentQNet(flat_dim(observation_space), c.hidden_sizes, c.gru_size, self.num_actions)
        self.q_net.to(self.device)
        self.target_net = copy.deepcopy(self.q_net).requires_grad_(False)
        self.optimizer = torch.optim.Adam(self.q_net.parameters(), lr=c.lr)
        self.epsilon = c.exploration_initial_eps
        self.target_syncs = 0

    def initial_state(self, num_envs: int) -> np.ndarray:
        """Zero GRU state ``[N, H]`` for the start of every episode."""
        return np.zeros((num_envs, self.config.gru_size), dtype=np.float32)

    def on_progress(self, env_steps: int, total_steps: int) -> None:
        """Linear epsilon decay over env steps, and a hard target sync every ``target_update_interval``."""
        c = self.config
        self.epsilon = linear_epsilon(
            env_steps, total_steps, c.exploration_fraction, c.exploration_initial_eps, c.exploration_final_eps
        )
        sync, self.target_syncs = syncs_due(env_steps, c.target_update_interval, self.target_syncs)
        if sync:  # (counted from the step counter, so a Runner.reset() restarts the syncs too)
            hard_update(self.target_net, self.q_net)

    def act(self, obs: np.ndarray, explore: bool, state: np.ndarray | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Epsilon-greedy (or greedy) actions from ``obs [N, D]`` and ``state [N, H]``; the GRU always steps, so
        extras carry ``next_state``."""
        n = len(obs)
        h = self.initial_state(n) if state is None else state
        with torch.no_grad():
            x = to_tensor(obs, self.device).reshape(n, 1, -1)
            q, hidden = self.q_net(x, to_tensor(h, self.device))
        q_np = q[:, 0].cpu().numpy()
        action = epsilon_greedy(
            lambda: argmax_random_ties(q_np, self.rng), n, self.num_actions, self.epsilon, self.rng, explore
        )
        return action, {"next_state": hidden[:, 0].cpu().numpy()}

    def update(self, batch: dict[str, Any]) -> dict[str, Any]:
        """One gradient step on a ``[B, L, ...]`` sequence batch; the loss covers masked-in steps after burn-in."""
        c, dev, b = self.config, self.device, self.config.burn_in
        if "mask" not in batch or np.ndim(batch["reward"]) != 2 or np.shape(batch["reward"])[1] <= b:
            raise ValueError(
                f"DRQN.update needs [B, L] sequence windows longer than agent.burn_in={b}, with a mask "
                f"(buffer=sequence); got fields {sorted(batch)} with reward shape {np.shape(batch['reward'])}"
            )
        obs = to_tensor(batch["obs"], dev).flatten(2)  # [B, L, D]
        next_obs = to_tensor(batch["next_obs"], dev).flatten(2)[:, b:]  # [B, S, D]
        action = to_tensor(batch["action"], dev, torch.long)[:, b:].unsqueeze(-1)  # [B, S, 1]
        reward = to_tensor(batch["reward"], dev)[:, b:]  # [B, S]
        not_terminal = 1.0 - to_tensor(batch["terminated"], dev)[:, b:]
        mask = to_tensor(batch["mask"], dev)[:, b:]  # [B, S]
        h0 = torch.zeros(obs.shape[0], c.gru_size, device=dev)

        # Burn-in: warm the online state on the first steps without gradient.
        with torch.no_grad():
            h_online = self.q_net(obs[:, :b], h0)[1][:, -1] if b else h0
        # Q of the actions taken, and the hidden state after each trained step.
        q_all, hidden = self.q_net(obs[:, b:], h_online)  # [B, S, A], [B, S, H]
        q = q_all.gather(2, action).squeeze(2)  # [B, S]
        # TD target without grad: one GRU step past each h_t with next_obs[t]; target net has its own states.
        with torch.no_grad():
            target_hidden = self.target_net(obs, h0)[1][:, b:]  # [B, S, H]
            next_q_all = self.target_net.step_from(next_obs, target_hidden)  # [B, S, A]
            if c.double_q:
                next_action = self.q_net.step_from(next_obs, hidden).argmax(dim=2, keepdim=True)
                next_q = next_q_all.gather(2, next_action).squeeze(2)
            else:
                next_q = next_q_all.max(dim=2).values
            td_target = reward + c.gamma * not_terminal * next_q
        # Huber loss averaged over the masked-in steps.
        per_step = F.smooth_l1_loss(q, td_target, reduction="none")
        loss = (per_step * mask).sum() / mask.sum().clamp(min=1.0)
        # Clipped optimiser step.
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.q_net.parameters(), c.max_grad_norm, foreach=True)
        self.optimizer.step()

        return {
            "train/loss": loss.item(),
            "train/q_mean": ((q * mask).sum() / mask.sum().clamp(min=1.0)).item(),
            "train/grad_norm": grad_norm.item(),
            "rollout/exploration_rate": self.epsilon,
        }

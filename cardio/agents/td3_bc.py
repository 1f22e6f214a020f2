"""TD3+BC: TD3 whose actor also regresses onto the dataset's actions.

Fujimoto & Gu 2021, "A Minimalist Approach to Offline Reinforcement Learning" (arXiv:2106.06860), eq. (3)-(4):
the critics learn exactly as in TD3 (``cardio/agents/td3.py``: clipped double Q, target smoothing, delayed actor
and targets); the actor maximises

    pi = argmax_pi E_{(s,a) ~ D}[ lambda * Q1(s, pi(s)) - (pi(s) - a)^2 ],   lambda = alpha / mean_s |Q1(s, pi(s))|

with the mean over the batch and lambda held constant in the gradient (detached), so the balance between the Q
term and the BC term does not depend on the scale of the rewards. Actions are in the actor's ``[-1, 1]`` units
(dataset actions mapped from the env's bounds). The paper normalises states by the dataset's mean and std; this
file does not (Pendulum's states are already of order 1; docs/offline.md).

Defaults are the paper's for D4RL locomotion: ``alpha = 2.5``, Adam at 3e-4, two hidden layers of 256, tau 0.005,
policy noise 0.2 clipped at 0.5, policy delay 2, batch 256, discount 0.99.

Only the actor's loss (:meth:`TD3BC.actor_loss`) is this file's; the update is TD3's, so its metrics are TD3's
(``train/critic_loss``, ``train/q_mean``, ``train/learning_rate``, ``train/actor_loss`` on actor steps) plus, on
actor steps, ``train/bc_loss`` (the squared-error term) and ``train/lmbda`` (lambda).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from cardio.agents.critics import q_values
from cardio.agents.td3 import TD3, TD3Config


@dataclass
class TD3BCConfig(TD3Config):
    """TD3's knobs (paper defaults) plus alpha; the same keys, in the same order, as ``configs/agent/td3_bc.yaml``."""

    zoo_name: ClassVar[str] = "td3_bc"
    """Algorithm key of tuned files, ``configs/zoo/td3_bc/<EnvId>.yaml`` (none shipped; never TD3's online numbers)."""

    lr: float = 3e-4
    """Adam learning rate of actor and critics."""
    hidden_sizes: tuple[int, ...] = (256, 256)
    """Hidden widths (ReLU) of the actor and of each critic."""
    noise_type: str = "none"
    """Exploration noise (offline: none; an online fine-tune may set ``"normal"``)."""
    alpha: float = 2.5
    """Weight of the Q term against the BC term, before normalisation by the batch's mean |Q|."""

    def agent_class(self) -> type[TD3BC]:
        return TD3BC


class TD3BC(TD3):
    """TD3+BC on the TD3 core; see the module docstring for the actor's loss and the metrics."""

    config: TD3BCConfig

    def actor_loss(self, obs: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """``-lambda * mean Q1(s, pi(s)) + mean (pi(s) - a)^2`` with ``lambda = alpha / mean |Q1(s, pi(s))|``
        (detached); ``action`` in ``[-1, 1]`` units. Returns the loss and its parts as metrics."""
        pi = self.actor(obs)
        q = q_values(self.critics[:1], obs, pi)[0]  # [B]
        lmbda = self.config.alpha / q.abs().mean().detach()
        bc_loss = F.mse_loss(pi, action)
        return -lmbda * q.mean() + bc_loss, {"train/bc_loss": bc_loss.item(), "train/lmbda": lmbda.item()}

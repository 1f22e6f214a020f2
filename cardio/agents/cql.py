"""CQL for discrete actions: DQN's update plus the conservative (logsumexp) penalty.

Kumar et al. 2020, "Conservative Q-Learning for Offline Reinforcement Learning" (arXiv:2006.04779), the CQL(H)
variant, eq. (4), for discrete actions (section 4 and appendix F, Atari). The loss is

    L(theta) = alpha * E_{s,a ~ D}[ logsumexp_b Q(s, b) - Q(s, a) ] + Huber(Q(s, a), y)
    y = r + gamma (1 - terminated) max_b Q'(s', b)

The penalty pushes every action's Q down through the soft maximum and the dataset action's Q back up, so actions
never seen in a state end up below those the data took there: with ``alpha > 0`` a greedy policy stays on the
data's support. ``cql_alpha = 0`` is DQN exactly. Everything but the loss in :meth:`CQL.update` is DQN's
(``cardio/agents/dqn.py``): network, observations of any space DQN takes (Dict included), the TD target
(:meth:`DQN.td_target`), target syncs, greedy action with ties at random. Offline, the runner's clock
is gradient steps, so ``target_update_interval`` counts updates.

Defaults: ``cql_alpha = 1.0``, d3rlpy's ``DiscreteCQL`` default (the paper tunes alpha per Atari data fraction,
its appendix F); the DQN knobs keep DQN's defaults (SB3's). On CartPole ``bench/offline.py`` uses DQN's rl-zoo
numbers for the shared knobs.

Metrics returned by :meth:`CQL.update`: DQN's (``train/loss`` is the total), plus ``train/td_loss`` and
``train/cql_loss`` (the penalty before ``alpha``: logsumexp Q minus the data action's Q).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from cardio.agents.dqn import DQN, DQNConfig
from cardio.agents.networks import obs_to_tensor, to_tensor


@dataclass
class CQLConfig(DQNConfig):
    """DQN's knobs plus the penalty weight; the same keys, in the same order, as ``configs/agent/cql.yaml``."""

    zoo_name: ClassVar[str] = "cql"
    """Algorithm key of tuned files, ``configs/zoo/cql/<EnvId>.yaml`` (none shipped; never DQN's online numbers)."""

    cql_alpha: float = 1.0
    """Weight of the conservative penalty ``logsumexp_b Q(s, b) - Q(s, a)`` (0: plain DQN)."""

    def agent_class(self) -> type[CQL]:
        return CQL


class CQL(DQN):
    """Discrete CQL(H) on the DQN core; see the module docstring for the loss and metrics."""

    config: CQLConfig

    def update(self, batch: dict[str, Any]) -> dict[str, Any]:
        """One gradient step on a ``[B, ...]`` batch; bootstraps on ``terminated`` only, never ``truncated``."""
        c, dev = self.config, self.device
        # Observations through DQN's path (Dict, Tuple and image observations included), DQN's TD target.
        obs = obs_to_tensor(batch["obs"], dev)
        action = to_tensor(batch["action"], dev, torch.long).reshape(-1, 1)
        td_target = self.td_target(batch)
        # Q of every action, and of the dataset's action.
        q_all = self.q_net(obs)  # [B, A]
        q = q_all.gather(1, action).squeeze(1)  # [B]
        # Huber TD loss plus the conservative penalty: soft maximum of Q down, the data action's Q up.
        td_loss = F.smooth_l1_loss(q, td_target)
        cql_loss = (torch.logsumexp(q_all, dim=1) - q).mean()
        loss = td_loss + c.cql_alpha * cql_loss
        # Clipped optimiser step.
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.q_net.parameters(), c.max_grad_norm)
        self.optimizer.step()

        return {
            "train/loss": loss.item(),
            "train/td_loss": td_loss.item(),
            "train/cql_loss": cql_loss.item(),
            "train/q_mean": q.mean().item(),
            "train/td_target_mean": td_target.mean().item(),
            "train/grad_norm": grad_norm.item(),
        }

"""REINFORCE (Williams 1992) kept outside cardio: run `cardio train agent=reinforce` from this folder.

cardio finds this module (the working directory is on the import path) and `configs/agent/reinforce.yaml` (the
working directory's `configs/` joins the config search path): no cardio checkout, no PYTHONPATH.
"""

from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch

from cardio.agents.base import AgentConfig


@dataclass
class ReinforceConfig(AgentConfig["Reinforce"]):
    zoo_name: ClassVar[str] = "reinforce"
    observation_spaces: ClassVar[tuple[type[gym.Space], ...]] = (gym.spaces.Box,)
    action_spaces: ClassVar[tuple[type[gym.Space], ...]] = (gym.spaces.Discrete,)
    lr: float = 1e-2
    """Adam learning rate."""
    gamma: float = 0.99
    """Discount per env step."""
    hidden: int = 64
    """Width of the policy's hidden layer."""

    def agent_class(self) -> type["Reinforce"]:
        return Reinforce


class Reinforce:
    """Policy gradient with Monte-Carlo returns-to-go, restarted at every episode end within a rollout."""

    def __init__(self, observation_space: gym.Space, action_space: gym.Space, config: ReinforceConfig, **_: Any):
        self.c = config
        n_in, n_out = int(np.prod(observation_space.shape)), int(action_space.n)  # type: ignore[arg-type,attr-defined]
        self.policy = torch.nn.Sequential(
            torch.nn.Linear(n_in, config.hidden), torch.nn.Tanh(), torch.nn.Linear(config.hidden, n_out)
        )
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=config.lr)

    @torch.no_grad()
    def act(self, obs: np.ndarray, explore: bool) -> tuple[np.ndarray, dict[str, Any]]:
        logits = self.policy(torch.as_tensor(obs, dtype=torch.float32))
        action = torch.distributions.Categorical(logits=logits).sample() if explore else logits.argmax(-1)
        return action.numpy(), {}

    def update(self, rollout: dict[str, Any]) -> dict[str, float]:  # a [T, N] rollout
        returns, running = np.zeros_like(rollout["reward"]), np.zeros(rollout["reward"].shape[1])
        ended = rollout["terminated"] | rollout["truncated"]
        for t in reversed(range(len(returns))):
            running = rollout["reward"][t] + self.c.gamma * running * ~ended[t]
            returns[t] = running
        logits = self.policy(torch.as_tensor(rollout["obs"], dtype=torch.float32))
        log_prob = torch.distributions.Categorical(logits=logits).log_prob(torch.as_tensor(rollout["action"]))
        advantage = torch.as_tensor((returns - returns.mean()) / (returns.std() + 1e-8))
        loss = -(log_prob * advantage).mean()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return {"train/policy_gradient_loss": loss.item(), "train/learning_rate": self.c.lr}

    def state_dict(self) -> dict[str, Any]:
        return {"policy": self.policy.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])

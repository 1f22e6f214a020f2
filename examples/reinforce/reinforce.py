"""REINFORCE (Williams 1992), kept outside cardio: `cardio train agent=reinforce` from this folder finds this
module and `configs/agent/reinforce.yaml`. Returns-to-go restart at episode ends; an episode cut by the end of a
rollout counts only the rewards inside it (no critic to bootstrap from)."""

from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch

from cardio.agents.base import AgentConfig


@dataclass
class ReinforceConfig(AgentConfig["Reinforce"]):
    observation_spaces: ClassVar = (gym.spaces.Box,)
    action_spaces: ClassVar = (gym.spaces.Discrete,)
    lr: float = 1e-2  # Adam learning rate
    gamma: float = 0.99  # discount per env step
    hidden: int = 64  # width of the policy's hidden layer

    def agent_class(self) -> type["Reinforce"]:
        return Reinforce


class Reinforce:
    def __init__(self, observation_space: gym.Space, action_space: Any, config: ReinforceConfig, **_: Any) -> None:
        self.gamma, n_in, h = config.gamma, int(np.prod(observation_space.shape or ())), config.hidden
        self.policy = torch.nn.Sequential(torch.nn.Linear(n_in, h), torch.nn.Tanh(), torch.nn.Linear(h, action_space.n))
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=config.lr)

    def pi(self, obs: np.ndarray) -> torch.distributions.Categorical:
        return torch.distributions.Categorical(logits=self.policy(torch.as_tensor(obs, dtype=torch.float32)))

    @torch.no_grad()
    def act(self, obs: np.ndarray, explore: bool) -> tuple[np.ndarray, dict[str, Any]]:
        pi = self.pi(obs)  # obs [N, ...] -> actions [N]: sampled in training, the most likely in evaluation
        return (pi.sample() if explore else pi.probs.argmax(-1)).numpy(), {}

    def update(self, rollout: dict[str, np.ndarray]) -> dict[str, float]:
        reward, ended = rollout["reward"], rollout["terminated"] | rollout["truncated"]  # [T, N]
        returns, running = np.zeros_like(reward), np.zeros(reward.shape[1])
        for t in reversed(range(len(reward))):  # discounted return-to-go, restarted where an episode ended
            running = returns[t] = reward[t] + self.gamma * running * ~ended[t]
        weight = torch.as_tensor((returns - returns.mean()) / (returns.std() + 1e-8), dtype=torch.float32)
        loss = -(self.pi(rollout["obs"]).log_prob(torch.as_tensor(rollout["action"])) * weight).mean()
        self.optimizer.zero_grad()
        loss.backward()  # gradient ascent on E[log pi(a|s) * standardised return]
        self.optimizer.step()
        return {"train/policy_gradient_loss": loss.item()}

    def state_dict(self) -> dict[str, Any]:
        return {"policy": self.policy.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])

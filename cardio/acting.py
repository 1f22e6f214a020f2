"""Acting: the agent's policy as a collection calls it, with the state that lives between steps.

An :class:`Actor` holds what acting needs besides the agent's weights: the observation normaliser (the agent
sees normalised observations; in training the statistics first take in the observations about to be acted on,
as VecNormalize updates in ``step``), the recurrent policy state of a stateful agent (one for the training envs,
one for the eval envs: ``initial_state`` rows for every env that starts an episode) and the agent's
``on_episode_end`` hook (training envs only: OU noise restarts there). It hands the collection path
(:meth:`cardio.gatherer.Gatherer.collect`) a policy, a ``before_act`` hook and :class:`~cardio.stepping.StepHooks`;
an actor without any of that state hands none, and the collection keeps its fast path.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cardio.envs.normalize import Normalizer
from cardio.pytree import Tree, tree_map
from cardio.stepping import StepHooks


class Actor:
    """The policy and its between-step state for one agent.

    Args:
        agent: the agent (``act(obs, explore[, state])``, optional ``initial_state`` and ``on_episode_end``).
        normalizer: the runner's observation and reward normaliser, or ``None``.
        num_envs: training envs (rows of the training policy state).
        eval_envs: eval envs (rows of the eval policy state; 0: no eval env).
    """

    def __init__(self, agent: Any, normalizer: Normalizer | None, num_envs: int, eval_envs: int = 0) -> None:
        self.agent = agent
        self.normalizer = normalizer
        self.num_envs, self.eval_envs = num_envs, eval_envs
        self.reset_state()

    def reset_state(self) -> None:
        """Fresh recurrent states for the training and eval envs, if the agent has ``initial_state``."""
        init = getattr(self.agent, "initial_state", None)
        self.state: Tree | None = None if init is None else init(self.num_envs)
        self.eval_state: Tree | None = None if init is None or not self.eval_envs else init(self.eval_envs)

    # ---------------------------------------------------------------------------------------------- for collect
    def policy(self, explore: bool, evaluation: bool = False) -> Any:
        """``obs -> (action, extras)``: normalised observations in (frozen statistics in evaluation); a stateful
        agent gets its state and hands back ``extras["next_state"]``, kept here and never stored."""
        agent, norm = self.agent, self.normalizer
        if self.state is None:
            if norm is None:
                return lambda obs: agent.act(obs, explore=explore)
            return lambda obs: agent.act(norm.normalize_obs(obs), explore=explore)
        name = "eval_state" if evaluation else "state"

        def act(obs: Tree) -> tuple[Any, dict[str, Any]]:
            obs = obs if norm is None else norm.normalize_obs(obs)
            action, extras = agent.act(obs, explore=explore, state=getattr(self, name))
            setattr(self, name, extras.pop("next_state"))
            return action, extras

        return act

    def before_act(self, evaluation: bool = False) -> Any:
        """The training normaliser's update with the observations about to be acted on (NEXT_STEP reset rows
        hold a stale final observation and are left out); ``None`` without one, and in evaluation."""
        if self.normalizer is None or evaluation:
            return None
        return self.normalizer.update_obs

    def hooks(self, evaluation: bool = False, store_normalized: bool = False) -> StepHooks:
        """The per-step state a collection keeps current: the normaliser's running returns (training), the envs
        that start an episode (``on_episode_end`` in training, recurrent state rows), and, with
        ``store_normalized`` (an on-policy rollout), the step as the agent saw it."""
        norm = None if evaluation else self.normalizer
        on_end = None if evaluation else getattr(self.agent, "on_episode_end", None)
        stateful = (self.eval_state if evaluation else self.state) is not None
        store = self._stored if store_normalized and self.normalizer is not None else None
        if norm is None and on_end is None and not stateful:
            return StepHooks(store=store)

        def after_step(reward: Any, done: np.ndarray, valid: np.ndarray, fresh: np.ndarray | None) -> None:
            if norm is not None:
                norm.update_returns(np.asarray(reward, dtype=np.float32), done, valid)
            if fresh is not None:
                self.start_episodes(fresh, evaluation)

        return StepHooks(after_step=after_step, store=store)

    def _stored(self, obs: Any, next_obs: Any, reward: np.ndarray) -> tuple[Any, Any, np.ndarray]:
        norm = self.normalizer
        assert norm is not None
        return norm.normalize_obs(obs), norm.normalize_obs(next_obs), norm.normalize_reward(reward)

    def start_episodes(self, fresh_rows: np.ndarray, evaluation: bool = False) -> None:
        """The envs of ``fresh_rows [N]`` start a new episode: the agent's ``on_episode_end`` hears of them
        (training envs only) and their recurrent state rows go back to ``initial_state``."""
        on_episode_end = getattr(self.agent, "on_episode_end", None)
        if on_episode_end is not None and not evaluation:
            on_episode_end(fresh_rows)
        state = self.eval_state if evaluation else self.state
        if state is None:
            return
        fresh = self.agent.initial_state(len(fresh_rows))
        state = tree_map(lambda s, f: np.where(fresh_rows.reshape(-1, *[1] * (np.ndim(s) - 1)), f, s), state, fresh)
        setattr(self, "eval_state" if evaluation else "state", state)

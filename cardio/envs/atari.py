"""Atari 2600 games through ``ale-py`` (an optional extra: ``pip install cardio-template[atari]``), with the
preprocessing of Mnih et al. 2015 as SB3's ``AtariWrapper`` and rl-baselines3-zoo apply it.

``configs/env/atari.yaml`` stacks the pieces on every copy, innermost first:

1. ``gym.make(id)`` of a frame-by-frame id (``PongNoFrameskip-v4``; ``ALE/Pong-v5`` with ``frameskip=1``), and
   ``make_env``'s recorder right on it: the game score, never clipped, over whole games (all lives). That is the
   episode return cardio reports (logs, evaluation, ``monitor.csv``); episode lengths are in emulator frames,
   noop-reset frames included, as SB3's ``Monitor`` counts them.
2. :func:`atari_preprocessing` (``wrappers``, training and evaluation): noop reset, frame skip with a max over
   the last two frames, 84x84 greyscale (gymnasium's ``AtariPreprocessing``), FIRE at game start for games that
   need it, and a stack of the last frames (gymnasium's ``FrameStackObservation``): ``[4, 84, 84]`` uint8,
   channels first, which cardio's Nature-CNN torso reads and scales to [0, 1] itself.
3. :class:`EpisodicLife` and :func:`clip_reward` (``train_wrappers``: the training env only; ``cardio.build``
   leaves them out of the evaluation env): a lost life ends the learning episode (``terminated``) while the
   game goes on, and rewards become their sign.

ale-py is imported only when an Atari id is asked for (:func:`register_atari_envs`), so other runs never load it.
"""

from __future__ import annotations

import re
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

from cardio.errors import ConfigError

EPISODE_CONTINUES_KEY = "episode_continues"
"""Info key a wrapper sets (``True``) on a step that ends the episode for learning only (a lost life): the game
goes on, so the gatherer neither records an episode there nor restarts its return and length."""

ATARI_ID = re.compile(r"ALE/[A-Za-z0-9]+-v\d+|[A-Za-z0-9]+(NoFrameskip|Deterministic)-v[04]")
"""Ids ale-py registers that cardio recognises as Atari before ale-py is imported: gymnasium's ``ALE/<Game>-v5``
namespace and the ``<Game>NoFrameskip-v4`` ids rl-baselines3-zoo is tuned on (``Deterministic`` too)."""

EXTRA = "cardio-template[atari]"
"""The pip extra that installs ale-py (its wheels ship the game ROMs)."""


def is_atari_id(env_id: str) -> bool:
    """Whether ``env_id`` (registered form, no ``module:``) names an Atari game (see :data:`ATARI_ID`)."""
    return ATARI_ID.fullmatch(env_id) is not None


def register_atari_envs(env_id: str) -> None:
    """Import ale-py and register its games with gymnasium (``gym.register_envs``), once.

    Args:
        env_id: the id asked for, named in the error.

    Raises:
        ConfigError: ale-py is not installed; the message names the extra to install.
    """
    if env_id in gym.registry:
        return
    try:
        import ale_py
    except ImportError as exc:
        raise ConfigError(
            f"env.id={env_id!r} is an Atari game, which needs ale-py: pip install '{EXTRA}' (or pip install ale-py)"
        ) from exc
    gym.register_envs(ale_py)


# ------------------------------------------------------------------------------------------------ both envs
def _has_fire(env: gym.Env) -> bool:
    """Games that only start once FIRE is pressed (Breakout...): action 1 is FIRE (SB3's ``FireResetEnv`` test)."""
    meanings = env.unwrapped.get_action_meanings()  # type: ignore[attr-defined]
    return len(meanings) >= 3 and meanings[1] == "FIRE"


def _press_fire(env: gym.Env, obs: Any, info: dict[str, Any], reset: Any) -> tuple[Any, dict[str, Any]]:
    """FIRE then action 2 (SB3's ``FireResetEnv``), restarting through ``reset`` should either end the game."""
    for action in (1, 2):
        obs, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            obs, info = reset()
    return obs, info


class FireReset(gym.Wrapper):
    """Press FIRE after every reset, for games that stand still until it is pressed.

    Args:
        env: an Atari env (anything with ``unwrapped.get_action_meanings()``) whose action 1 is FIRE.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        if not _has_fire(env):
            raise ValueError(f"FireReset needs a game whose action 1 is FIRE, {env.spec and env.spec.id} has none")

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        return _press_fire(self.env, obs, info, lambda: self.env.reset(options=options))


def atari_preprocessing(
    env: gym.Env,
    noop_max: int = 30,
    frame_skip: int = 4,
    screen_size: int = 84,
    frame_stack: int = 4,
    fire_reset: bool = True,
) -> gym.Env:
    """The preprocessing both the training and the evaluation env get (SB3's ``AtariWrapper`` less its
    training-only parts, plus ``VecFrameStack``'s stacking).

    Args:
        env: a frame-by-frame Atari env (``<Game>NoFrameskip-v4``, or ``ALE/<Game>-v5`` made with
            ``frameskip=1``: ``env.kwargs.frameskip=1``).
        noop_max: at most this many no-op frames after each reset (a random count from 1), for varied starts.
        frame_skip: emulator frames per agent step, the action repeated; the observation is the pixel-wise max
            of the last two (sprites that flicker stay visible) and the reward is their sum.
        screen_size: side of the square greyscale frame.
        frame_stack: frames stacked on a leading axis (``[frame_stack, screen_size, screen_size]`` uint8); 1 = none.
            After a reset the stack holds copies of the first frame (gymnasium's padding; SB3's ``VecFrameStack``
            pads with zeros).
        fire_reset: press FIRE after a reset for games that need it to start (no effect on other games).

    Raises:
        ConfigError: the env skips frames itself while ``frame_skip > 1`` (the frames would be skipped twice).
    """
    skipping = getattr(env.unwrapped, "_frameskip", 1)
    if frame_skip > 1 and skipping != 1:
        env_id = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
        raise ConfigError(
            f"env.id={env_id!r} skips frames itself (frameskip={skipping}) and the Atari preprocessing skips "
            f"frame_skip={frame_skip} more: set env.kwargs.frameskip=1 (the wrapper skips and max-pools), or use "
            f"the <Game>NoFrameskip-v4 id"
        )
    env = gym.wrappers.AtariPreprocessing(
        env, noop_max=noop_max, frame_skip=frame_skip, screen_size=screen_size, grayscale_obs=True
    )
    if fire_reset and _has_fire(env):
        env = FireReset(env)
    if frame_stack > 1:
        env = gym.wrappers.FrameStackObservation(env, frame_stack)
    return env


# ------------------------------------------------------------------------------------------------ training only
class EpisodicLife(gym.Wrapper):
    """A lost life ends the episode for learning (``terminated=True``, the value bootstraps no further), while
    the game goes on: the ``reset`` that follows takes a no-op step (and FIRE, for games that need it) instead of
    restarting the game, so the recorder under it sees whole games. Training env only (SB3's
    ``EpisodicLifeEnv``). The step that loses the life carries ``info[EPISODE_CONTINUES_KEY] = True``. The
    evaluation env has no such wrapper: there, after a lost life, the agent presses FIRE itself where the game
    needs it (a greedy agent that never learnt to may idle until the game's frame limit).

    Args:
        env: an Atari env (anything with ``unwrapped.ale.lives()``), preprocessed or not.
    """

    continues_episodes = True
    """Read by the gatherer (``get_attr``): an env that may end an episode for learning only is collected step by
    step, where the life-loss rule lives, never by the block-wise fast paths."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.lives = 0
        self.game_over = True
        self.fire = _has_fire(env)

    def _ale_lives(self) -> int:
        return int(self.env.unwrapped.ale.lives())  # type: ignore[attr-defined]

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.game_over = bool(terminated or truncated)
        lives = self._ale_lives()
        if 0 < lives < self.lives and not self.game_over:
            terminated = True
            info = {**info, EPISODE_CONTINUES_KEY: True}
        self.lives = lives
        return obs, reward, terminated, truncated, info

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        if self.game_over or seed is not None:
            obs, info = self.env.reset(seed=seed, options=options)
        else:  # the same game, next life
            obs, _, terminated, truncated, info = self.env.step(0)
            if terminated or truncated:
                obs, info = self.env.reset(options=options)
            elif self.fire:
                obs, info = _press_fire(self.env, obs, info, lambda: self.env.reset(options=options))
        self.game_over = False
        self.lives = self._ale_lives()
        return obs, info


def clip_reward(env: gym.Env) -> gym.Env:
    """Rewards become their sign (-1, 0, 1), so one step size fits every game's score scale (training env
    only; the recorder under it still sees the game score)."""
    return gym.wrappers.TransformReward(env, lambda r: float(np.sign(float(r))))

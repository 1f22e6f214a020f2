"""A ``SyncVectorEnv`` of exactly one env, with a short ``step``.

gymnasium's ``SyncVectorEnv.step`` is written for N envs: it iterates the batched action through the space,
merges each env's info dict key by key, concatenates the observations through the space and deep-copies the
result. With one cheap env (CartPole: ~10 us a step) that generic work costs twice the env step itself
(``bench/collection.py``). ``OneEnvVector`` returns exactly what ``SyncVectorEnv`` returns (same arrays, same
infos, same autoreset behaviour in all three modes, tested in ``tests/test_vector_envs.py``) but does it for
row 0 directly. Observations that are not plain arrays (Dict, Tuple spaces) take the parent's path.

It stays a ``SyncVectorEnv`` (same fields), so checkpoints capture and restore it as before.
"""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

_FLAG: dict[bool, np.ndarray] = {}  # read-only [False] and [True]: the flags of a one-env step
for _value in (False, True):
    _FLAG[_value] = np.array([_value])
    _FLAG[_value].flags.writeable = False


class OneEnvVector(gym.vector.SyncVectorEnv):
    """``SyncVectorEnv([make_one])`` with a fast ``step`` for array observations.

    Differences a caller can see: rewards come as float32 (what buffers store; the parent gives float64), and
    the ``terminated`` / ``truncated`` arrays are shared read-only constants (``[False]`` / ``[True]``) rather
    than fresh copies, so writing into them raises instead of going unnoticed.

    Args:
        make_one: builds the single env.
        autoreset_mode: as for ``SyncVectorEnv``.
    """

    def __init__(self, make_one: Any, autoreset_mode: AutoresetMode = AutoresetMode.NEXT_STEP) -> None:
        super().__init__([make_one], autoreset_mode=autoreset_mode)
        # Box/Discrete/MultiBinary... observations are one array; anything nested goes through the parent.
        self._plain_obs = isinstance(self._observations, np.ndarray)
        self._obs_dtype = self._observations.dtype if self._plain_obs else None

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if not self._plain_obs:
            return super().step(actions)
        env = self.envs[0]
        mode = self.autoreset_mode
        reward: SupportsFloat
        if mode == AutoresetMode.NEXT_STEP and self._autoreset_envs[0]:
            obs, env_info = env.reset()
            reward, terminated, truncated = 0.0, False, False
            infos = self._add_info({}, env_info, 0) if env_info else {}
        else:
            if mode == AutoresetMode.DISABLED:
                assert not self._autoreset_envs[0], f"{self._autoreset_envs=}"  # as the parent asserts
            obs, reward, terminated, truncated, env_info = env.step(actions[0])
            infos = {}
            if mode == AutoresetMode.SAME_STEP and (terminated or truncated):
                infos = self._add_info(infos, {"final_obs": obs, "final_info": env_info}, 0)
                obs, env_info = env.reset()
            if env_info:
                infos = self._add_info(infos, env_info, 0)
        # The parent's bookkeeping that later steps read (its other fields are overwritten before being read).
        self._env_obs[0] = obs
        self._autoreset_envs[0] = terminated or truncated
        return (
            np.array((obs,), dtype=self._obs_dtype),  # a fresh [1, ...] copy, as the parent's copy=True gives
            np.array((reward,), dtype=np.float32),
            _FLAG[bool(terminated)],
            _FLAG[bool(truncated)],
            infos,
        )

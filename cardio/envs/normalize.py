"""Observation and reward normalisation with VecNormalize's meaning (rl-zoo's ``normalize: true``).

One set of running statistics is shared by all training env copies (a per-copy gymnasium wrapper would keep N
different ones), frozen while evaluating (the eval env reads the training statistics and never updates them),
and saved in the runner's checkpoint (restored on resume and by ``scripts/evaluate.py``).

Legend: N envs, B batch, ``*S`` the observation shape.

``obs_norm = clip((obs - mean) / sqrt(var + eps), -clip_obs, clip_obs)`` with ``mean, var [*S]`` running over
every observation the training envs produced. Rewards are divided by the running standard deviation of the
discounted return ``R_t = gamma * R_{t-1} + r_t`` (reset to 0 when an episode ends), then clipped to
``[-clip_reward, clip_reward]``; they are not centred, so the sign of a reward survives.

Where normalised values are used (``cardio/runner.py`` applies this module):

* acting: the agent always sees normalised observations; in training the statistics first take in the observations
  about to be acted on (as VecNormalize updates in ``step`` before the agent sees the result);
* on-policy rollouts store what the agent saw: observations normalised with the statistics of their step, and
  scaled rewards, because the stored ``log_prob`` and ``value`` were computed on exactly those inputs;
* replay buffers store raw observations and rewards, normalised when a batch is sampled with the statistics of that
  moment (SB3 does the same for off-policy algorithms): stored transitions never go stale as the statistics move;
* evaluation returns, ``rollout/ep_rew_mean`` and the ``eval/*`` metrics are the env's own raw returns.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

NORMALIZER_NAME = "normalize.npz"
"""File the runner writes beside ``weights.npz`` when it normalises: the statistics as plain arrays, read with
``allow_pickle=False`` by ``scripts/evaluate.py`` (the agent's weights alone would act on raw observations)."""


class RunningMeanStd:
    """Mean and variance of a stream of ``[B, *S]`` batches, merged batch by batch (Chan et al.'s parallel
    formula), in float64.

    Args:
        shape: ``S``, the shape of one sample.
    """

    def __init__(self, shape: tuple[int, ...] = ()) -> None:
        self.mean = np.zeros(shape, dtype=np.float64)
        self.var = np.ones(shape, dtype=np.float64)
        self.count = 1e-4  # VecNormalize's prior: the first batch dominates at once

    def update(self, batch: np.ndarray) -> None:
        """Merge a ``[B, *S]`` batch (B may be 0)."""
        batch = np.asarray(batch, dtype=np.float64)
        n = batch.shape[0]
        if n == 0:
            return
        batch_mean, batch_var = batch.mean(axis=0), batch.var(axis=0)
        delta = batch_mean - self.mean
        total = self.count + n
        self.mean = self.mean + delta * n / total
        self.var = (self.var * self.count + batch_var * n + delta**2 * self.count * n / total) / total
        self.count = total

    def state_dict(self) -> dict[str, Any]:
        return {"mean": self.mean.copy(), "var": self.var.copy(), "count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.mean, self.var, self.count = state["mean"].copy(), state["var"].copy(), float(state["count"])


class Normalizer:
    """Shared running statistics of the training envs' observations and discounted returns.

    Args:
        norm_obs: normalise observations.
        norm_reward: scale rewards by the running standard deviation of the discounted return.
        clip_obs: bound of the normalised observations.
        clip_reward: bound of the scaled rewards.
        gamma: discount of the return whose spread scales the rewards (rl-zoo passes the agent's ``gamma``).
        epsilon: added to the variances before the square root.
    """

    def __init__(
        self,
        norm_obs: bool = True,
        norm_reward: bool = True,
        clip_obs: float = 10.0,
        clip_reward: float = 10.0,
        gamma: float = 0.99,
        epsilon: float = 1e-8,
    ) -> None:
        self.norm_obs, self.norm_reward = bool(norm_obs), bool(norm_reward)
        self.clip_obs, self.clip_reward = float(clip_obs), float(clip_reward)
        self.gamma, self.epsilon = float(gamma), float(epsilon)
        self.obs_rms: RunningMeanStd | None = None  # shaped by the first observations seen
        self.ret_rms = RunningMeanStd(())
        self.returns: np.ndarray | None = None  # [N] discounted return of each training env's current episode

    def _check_obs(self, obs: Any) -> np.ndarray:
        if not isinstance(obs, np.ndarray):
            raise TypeError(
                f"runner.normalize needs array (Box) observations, got {type(obs).__name__}; "
                f"set runner.normalize=null for Dict/Tuple observation spaces"
            )
        return obs

    def update_obs(self, obs: Any, rows: np.ndarray | None = None) -> None:
        """Take the training envs' ``[N, *S]`` observations (only ``rows``, a ``[N]`` bool mask, when given) into
        the statistics. Never called for eval envs: their statistics stay frozen."""
        if not self.norm_obs:
            return
        obs = self._check_obs(obs)
        if self.obs_rms is None:
            self.obs_rms = RunningMeanStd(obs.shape[1:])
        self.obs_rms.update(obs if rows is None else obs[rows])

    def normalize_obs(self, obs: Any) -> Any:
        """``[..., *S]`` observations normalised and clipped, float32; unchanged when ``norm_obs`` is off."""
        if not self.norm_obs or self.obs_rms is None:
            return obs
        obs = self._check_obs(obs)
        scaled = (obs - self.obs_rms.mean) / np.sqrt(self.obs_rms.var + self.epsilon)
        return np.clip(scaled, -self.clip_obs, self.clip_obs).astype(np.float32)

    def update_returns(self, reward: np.ndarray, done: np.ndarray, valid: np.ndarray) -> None:
        """One training vector step: ``R = gamma * R + r`` on the ``valid`` rows, the running spread of ``R``
        takes them in, then rows whose episode ended restart at 0."""
        if not self.norm_reward:
            return
        if self.returns is None:
            self.returns = np.zeros(len(reward), dtype=np.float64)
        self.returns = np.where(valid, self.returns * self.gamma + reward, self.returns)
        self.ret_rms.update(self.returns[valid])
        self.returns[done & valid] = 0.0

    def normalize_reward(self, reward: np.ndarray) -> np.ndarray:
        """Rewards divided by the discounted return's running standard deviation and clipped, float32."""
        if not self.norm_reward:
            return reward
        scaled = np.asarray(reward) / np.sqrt(self.ret_rms.var + self.epsilon)
        return np.clip(scaled, -self.clip_reward, self.clip_reward).astype(np.float32)

    def normalize_batch(self, batch: dict[str, Any]) -> dict[str, Any]:
        """A copy of a transition batch with ``obs``, ``next_obs`` and ``reward`` normalised (other fields kept)."""
        out = dict(batch)
        for key in ("obs", "next_obs"):
            if key in out:
                out[key] = self.normalize_obs(out[key])
        if "reward" in out:
            out["reward"] = self.normalize_reward(out["reward"])
        return out

    def state_dict(self) -> dict[str, Any]:
        """The statistics (and the training envs' running returns), for checkpoints."""
        return {
            "obs_rms": None if self.obs_rms is None else self.obs_rms.state_dict(),
            "ret_rms": self.ret_rms.state_dict(),
            "returns": None if self.returns is None else self.returns.copy(),
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the statistics (not the running returns: evaluation does not need them) as a plain ``.npz``."""
        from cardio.checkpoint import atomic_write

        arrays = {"ret_mean": self.ret_rms.mean, "ret_var": self.ret_rms.var, "ret_count": np.array(self.ret_rms.count)}
        if self.obs_rms is not None:
            arrays |= {"obs_mean": self.obs_rms.mean, "obs_var": self.obs_rms.var}
            arrays["obs_count"] = np.array(self.obs_rms.count)
        return atomic_write(path, lambda f: np.savez(f, **arrays))  # type: ignore[arg-type]  # numpy stubs

    def load(self, path: str | os.PathLike[str]) -> None:
        """Read :meth:`save`'s file without unpickling anything.

        Raises:
            ValueError: the file is missing or not a plain ``.npz`` of statistics.
        """
        try:
            with np.load(path, allow_pickle=False) as data:
                stored = {key: data[key] for key in data.files}
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: not a plain normalisation-statistics file ({exc})") from exc
        self.ret_rms.load_state_dict(
            {"mean": stored["ret_mean"], "var": stored["ret_var"], "count": float(stored["ret_count"])}
        )
        self.obs_rms = None
        if "obs_mean" in stored:
            self.obs_rms = RunningMeanStd(stored["obs_mean"].shape)
            self.obs_rms.load_state_dict(
                {"mean": stored["obs_mean"], "var": stored["obs_var"], "count": float(stored["obs_count"])}
            )

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["obs_rms"] is None:
            self.obs_rms = None
        else:
            self.obs_rms = RunningMeanStd(np.shape(state["obs_rms"]["mean"]))
            self.obs_rms.load_state_dict(state["obs_rms"])
        self.ret_rms.load_state_dict(state["ret_rms"])
        self.returns = None if state["returns"] is None else state["returns"].copy()

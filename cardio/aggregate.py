"""Aggregate scores across envs with stratified bootstrap CIs, as rliable does (Agarwal et al. 2021, "Deep RL at
the Edge of the Statistical Precipice"), in numpy alone (rliable's ``arch`` dependency does not import with
pandas 3).

Legend: a method's scores are a matrix ``[R, T]``: R runs (seeds) on each of T tasks (envs), each score
normalised per task (:func:`normalise`), so that 0 is a random policy and 1 the task's reference score.

* IQM: the mean of the middle 50 % of all ``R * T`` scores (a quarter trimmed at each end, ``floor(0.25 n)``).
* optimality gap: ``gamma - mean(min(score, gamma))``, how far the scores fall short of ``gamma`` (default 1:
  the reference); scores above ``gamma`` earn nothing extra. Lower is better.
* probability of improvement ``P(X > Y)``: the mean over tasks of the chance that a run of X beats a run of Y on
  that task, ties counted half (the Mann-Whitney U statistic over ``R_x * R_y``).
* performance profile at ``tau``: the fraction of runs scoring above ``tau``, averaged over tasks.
* stratified bootstrap: each task's runs are resampled with replacement independently (tasks are strata), the
  statistic recomputed ``reps`` times, and the CI is the percentile interval of those values.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def normalise(score: float | np.ndarray, low: float, high: float) -> np.ndarray:
    """``(score - low) / (high - low)``: 0 at ``low`` (a random policy), 1 at ``high`` (the reference).

    Raises:
        ValueError: ``high == low`` (every score would divide by zero).
    """
    if high == low:
        raise ValueError(f"normalising with low == high == {low}: give a reference score above the random one")
    return (np.asarray(score, dtype=float) - low) / (high - low)


def iqm(scores: np.ndarray) -> float:
    """Interquartile mean of all scores (``[R, T]`` flattened)."""
    x = np.sort(np.asarray(scores, dtype=float).ravel())
    cut = int(np.floor(0.25 * len(x)))
    return float(x[cut : len(x) - cut].mean())


def mean(scores: np.ndarray) -> float:
    """Mean of all scores."""
    return float(np.mean(scores))


def median(scores: np.ndarray) -> float:
    """Median of the per-task mean scores (rliable's definition: the median task)."""
    return float(np.median(np.mean(scores, axis=0)))


def optimality_gap(scores: np.ndarray, gamma: float = 1.0) -> float:
    """``gamma - mean(min(scores, gamma))``: the shortfall from ``gamma``; lower is better."""
    return float(gamma - np.mean(np.minimum(scores, gamma)))


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> float:
    """``P(X > Y)``: mean over tasks of ``P(run of X beats a run of Y) + P(tie) / 2``.

    Args:
        x: ``[R_x, T]`` scores of method X.
        y: ``[R_y, T]`` scores of method Y on the same T tasks, in the same order.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"probability of improvement needs the same tasks: {x.shape[1]} vs {y.shape[1]} columns")
    wins = (x[:, None, :] > y[None, :, :]).mean(axis=(0, 1))  # [T]
    ties = (x[:, None, :] == y[None, :, :]).mean(axis=(0, 1))  # [T]
    return float(np.mean(wins + 0.5 * ties))


def performance_profile(scores: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """``[len(taus)]``: per ``tau``, the fraction of runs scoring above it, averaged over tasks."""
    scores = np.asarray(scores, dtype=float)
    return np.mean(scores[None, :, :] > np.asarray(taus, dtype=float)[:, None, None], axis=(1, 2))


def stratified_resample(scores: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One bootstrap sample: each task's column resampled with replacement from its own runs."""
    runs, tasks = scores.shape
    rows = rng.integers(0, runs, size=(runs, tasks))  # [R, T]: per task, which runs to take
    return np.take_along_axis(scores, rows, axis=0)


def interval(
    statistic: Callable[..., float | np.ndarray],
    *scores: np.ndarray,
    reps: int = 2000,
    ci: float = 0.95,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(point, low, high)``: ``statistic(*scores)`` and its stratified-bootstrap percentile CI.

    Args:
        statistic: e.g. :func:`iqm`, :func:`probability_of_improvement` (two score matrices), or
            ``lambda s: performance_profile(s, taus)`` (one value per tau).
        scores: one ``[R, T]`` matrix per argument of ``statistic``; each is resampled on its own.
        reps: bootstrap resamples.
        ci: coverage of the interval.
        seed: resampling RNG seed (figures are reproducible).
    """
    arrays = [np.asarray(s, dtype=float) for s in scores]
    rng = np.random.default_rng(seed)
    point = np.asarray(statistic(*arrays), dtype=float)
    boots = np.stack([np.asarray(statistic(*(stratified_resample(a, rng) for a in arrays))) for _ in range(reps)])
    low, high = np.percentile(boots, [100 * (1 - ci) / 2, 100 * (1 + ci) / 2], axis=0)
    return point, low, high

"""Learning curves and aggregate scores from run dirs (``scripts/plot.py``, ``make plot runs=...``).

Runs are found, read and grouped by ``cardio/runs.py`` (re-exported here): the seeds of one configuration form
one curve, labelled by the keys that differ between the groups (``agent.lr=0.001 (n=2)``).

Curves: each seed's metric is interpolated onto a common grid of env steps (no extrapolation past a seed's
last point); the line is the mean over seeds and the band a 95 % percentile bootstrap of that mean (seeds
resampled with replacement). Aggregate score: the interquartile mean (IQM) of the runs' final scores, with a
95 % bootstrap CI (Agarwal et al. 2021, "Deep RL at the Edge of the Statistical Precipice").

Across envs (``make plot aggregate=true``): :func:`score_matrices` normalises each run's final score per env and
stacks them per method, :func:`aggregate_across_envs` computes the rliable statistics of :mod:`cardio.aggregate`
with stratified bootstrap CIs, :func:`plot_across_envs` draws them (docs/analysis.md).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cardio import aggregate
from cardio.errors import UserError
from cardio.runs import (  # noqa: F401  (re-exported: the plotting API reads runs)
    ABSENT,
    PER_RUN_KEYS,
    STEP_COLUMN,
    MetricNotLoggedError,
    Run,
    RunsNotFoundError,
    curve,
    default_label,
    describe,
    final_score,
    find_runs,
    flatten,
    group_runs,
    load_runs,
    method_labels,
    pick_metric,
    read_sb3,
    run_config,
)


class AggregateInputError(UserError, ValueError):
    """Runs that cannot be aggregated across envs as asked (a missing normalisation, unequal runs per env)."""


def bootstrap_mean_band(
    values: np.ndarray, n_boot: int = 2000, ci: float = 0.95, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over seeds and its percentile-bootstrap CI, per grid point.

    Args:
        values: ``[seeds, points]``; NaN where a seed has no value (it is left out of that point).
        n_boot: bootstrap resamples.
        ci: coverage of the band.
        seed: resampling RNG seed (plots are reproducible).
    """
    rng = np.random.default_rng(seed)
    n = values.shape[0]
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns past the shortest seed
        mean = np.nanmean(values, axis=0)
        if n == 1:
            return mean, mean.copy(), mean.copy()
        idx = rng.integers(0, n, size=(n_boot, n))  # [n_boot, seeds]
        boots = np.nanmean(values[idx], axis=1)  # [n_boot, points]
        lo, hi = np.nanpercentile(boots, [100 * (1 - ci) / 2, 100 * (1 + ci) / 2], axis=0)
    return mean, lo, hi


def iqm(values: Sequence[float] | np.ndarray) -> float:
    """Interquartile mean: the mean of the middle 50 % (trims a quarter at each end, as in rliable)."""
    x = np.sort(np.asarray(values, dtype=float))
    cut = int(np.floor(0.25 * len(x)))
    return float(x[cut : len(x) - cut].mean()) if len(x) else float("nan")


def iqm_ci(values: Sequence[float], n_boot: int = 2000, ci: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """``(IQM, low, high)``: the IQM of ``values`` with a percentile-bootstrap CI over runs."""
    x = np.asarray(values, dtype=float)
    if len(x) == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    boots = [iqm(x[rng.integers(0, len(x), len(x))]) for _ in range(n_boot)]
    lo, hi = np.percentile(boots, [100 * (1 - ci) / 2, 100 * (1 + ci) / 2])
    return iqm(x), float(lo), float(hi)


def plot_learning_curves(
    groups: dict[str, list[Run]],
    metric: str,
    out: str | Path,
    overlays: Sequence[tuple[str, str | Path]] = (),
    title: str | None = None,
    points: int = 200,
) -> Path:
    """One PNG: a mean line and 95 % bootstrap band per group, plus overlaid curves from other libraries.

    Args:
        groups: label -> runs (seeds), from :func:`group_runs`.
        metric: the y metric, e.g. ``eval/mean_reward``.
        out: PNG path; parent directories are created.
        overlays: ``(label, csv path)`` of SB3 ``monitor.csv`` / ``progress.csv`` files.
        title: figure title (default: the metric and the env(s)).
        points: grid points per curve.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for label, runs in groups.items():
        curves = [curve(r.data, metric) for r in runs]
        curves = [(x, y) for x, y in curves if len(x)]
        if not curves:
            continue
        grid = np.linspace(0.0, max(float(x[-1]) for x, _ in curves), points)
        values = np.stack(
            [np.where((grid >= x[0]) & (grid <= x[-1]), np.interp(grid, x, y), np.nan) for x, y in curves]
        )
        mean, lo, hi = bootstrap_mean_band(values)
        (line,) = ax.plot(grid, mean, label=f"{label} (n={len(curves)})", linewidth=1.8)
        ax.fill_between(grid, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
    for label, path in overlays:
        x, y = read_sb3(path, metric)
        ax.plot(x, y, linestyle="--", linewidth=1.5, label=label)
    ax.set_xlabel("env steps")
    ax.set_ylabel(metric)
    ax.set_title(title or f"{metric}: mean over seeds, 95 % bootstrap CI")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def plot_aggregate(scores: dict[str, tuple[float, float, float]], metric: str, out: str | Path) -> Path:
    """One PNG: each group's IQM of final scores as a dot with its 95 % CI as a bar.

    Args:
        scores: label -> ``(iqm, low, high)`` from :func:`iqm_ci`.
        metric: the scored metric, for the axis label.
        out: PNG path.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(scores)
    fig, ax = plt.subplots(figsize=(7, 1.2 + 0.5 * len(labels)), dpi=120)
    for i, label in enumerate(labels):
        mid, lo, hi = scores[label]
        ax.plot([lo, hi], [i, i], linewidth=6, alpha=0.35, solid_capstyle="butt")
        ax.plot([mid], [i], "ko")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel(f"IQM of final {metric} (95 % bootstrap CI)")
    ax.set_title("Aggregate score over runs")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


# -------------------------------------------------------------------------------------------------- across envs
def random_score(env_id: str, episodes: int = 30, seed: int = 0) -> float:
    """Mean return of uniformly random actions on ``gymnasium.make(env_id)`` (no wrappers), ``episodes`` episodes
    from ``seed``: the 0 of a normalised score."""
    import gymnasium as gym

    env = gym.make(env_id)
    env.action_space.seed(seed)
    returns = []
    for k in range(episodes):
        env.reset(seed=seed + k)
        total, done = 0.0, False
        while not done:
            _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    env.close()
    return float(np.mean(returns))


def reference_scores(
    env_ids: Sequence[str], given: dict[str, tuple[float, float]] | None = None
) -> dict[str, tuple[float, float]]:
    """``env id -> (low, high)`` that normalise its scores to 0 (random) .. 1 (reference).

    ``given`` wins (``make plot norm=CartPole-v1:22:500``); otherwise ``low`` is :func:`random_score` and
    ``high`` the env's registered ``reward_threshold`` (gymnasium's "solved" score: 475 for CartPole-v1).

    Raises:
        ValueError: an env without ``reward_threshold`` and no ``norm`` for it (the message says what to pass).
    """
    import gymnasium as gym

    given = given or {}
    out = {}
    for env_id in env_ids:
        if env_id in given:
            out[env_id] = given[env_id]
            continue
        high = gym.spec(env_id).reward_threshold
        if high is None:
            raise AggregateInputError(
                f"{env_id} registers no reward_threshold to normalise its scores by: pass norm={env_id}:LOW:HIGH "
                "(e.g. a random policy's return and a reference return)"
            )
        out[env_id] = (random_score(env_id), float(high))
    return out


def score_matrices(
    runs: Sequence[Run],
    metric: str,
    norm: dict[str, tuple[float, float]] | None = None,
    by: Sequence[str] | None = None,
) -> tuple[dict[str, np.ndarray], list[str], dict[str, tuple[float, float]]]:
    """``(method -> [runs, envs] normalised final scores, env ids, env -> (low, high))``.

    Raises:
        ValueError: a method lacks an env, or has different run counts on two envs (the stratified bootstrap
            and the pooled IQM need every method on every env with the same number of runs).
    """
    labels = method_labels(runs, by)
    envs = list(dict.fromkeys(str(r.config.get("env.id", ABSENT)) for r in runs))
    table: dict[str, dict[str, list[float]]] = {}
    for run, label in zip(runs, labels, strict=True):
        env = str(run.config.get("env.id", ABSENT))
        table.setdefault(label, {}).setdefault(env, []).append(final_score(run, metric))
    for label, per_env in table.items():
        counts = {env: len(per_env.get(env, [])) for env in envs}
        if len(set(counts.values())) != 1:
            raise AggregateInputError(
                f"method {label!r} has runs per env {counts}: an aggregate across envs needs every method on every "
                "env with the same number of runs (add or drop runs, or pick the method keys with by=...)"
            )
    refs = reference_scores(envs, norm)
    matrices = {
        label: np.stack([aggregate.normalise(np.asarray(per_env[env]), *refs[env]) for env in envs], axis=1)
        for label, per_env in table.items()
    }
    return matrices, envs, refs


def aggregate_across_envs(
    matrices: dict[str, np.ndarray], reps: int = 2000, seed: int = 0
) -> dict[str, dict[str, tuple[float, float, float]]]:
    """Per method: ``{"IQM": (point, low, high), "optimality gap": ..., "mean": ...}``; and for every ordered
    pair of methods ``"P(X > Y)"`` under the key ``"X vs Y"``."""
    out: dict[str, dict[str, tuple[float, float, float]]] = {}
    for label, scores in matrices.items():
        out[label] = {}
        for name, stat in (
            ("IQM", aggregate.iqm),
            ("optimality gap", aggregate.optimality_gap),
            ("mean", aggregate.mean),
        ):
            point, low, high = aggregate.interval(stat, scores, reps=reps, seed=seed)
            out[label][name] = (float(point), float(low), float(high))
    labels = list(matrices)
    for i, x in enumerate(labels):
        for y in labels[i + 1 :]:
            point, low, high = aggregate.interval(
                aggregate.probability_of_improvement, matrices[x], matrices[y], reps=reps, seed=seed
            )
            out[f"{x} vs {y}"] = {"P(X > Y)": (float(point), float(low), float(high))}
    return out


def plot_across_envs(
    matrices: dict[str, np.ndarray],
    results: dict[str, dict[str, tuple[float, float, float]]],
    envs: Sequence[str],
    metric: str,
    out: str | Path,
    reps: int = 2000,
) -> Path:
    """One PNG: IQM and optimality gap per method with 95 % stratified-bootstrap CIs, the performance profiles
    with bands, and (two methods or more) the probability of improvement of each pair."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(matrices)
    pairs = [k for k in results if "P(X > Y)" in results[k]]
    panels = 4 if pairs else 3
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 1.6 + 0.45 * max(len(labels), len(pairs))), dpi=120)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, name in zip(axes[:2], ("IQM", "optimality gap"), strict=True):
        for i, label in enumerate(labels):
            mid, lo, hi = results[label][name]
            ax.plot([lo, hi], [i, i], linewidth=8, alpha=0.4, color=colours[i % len(colours)], solid_capstyle="butt")
            ax.plot([mid], [i], "k|", markersize=14)
        ax.set_yticks(range(len(labels)), labels if name == "IQM" else [""] * len(labels))
        ax.set_xlabel(f"{name} (normalised)")
        ax.grid(axis="x", alpha=0.3)
    ax = axes[2]
    top = max(1.0, max(float(m.max()) for m in matrices.values()))
    taus = np.linspace(min(0.0, min(float(m.min()) for m in matrices.values())), top, 101)
    for i, (label, scores) in enumerate(matrices.items()):
        profile, band_lo, band_hi = aggregate.interval(
            lambda s: aggregate.performance_profile(s, taus), scores, reps=reps
        )
        ax.plot(taus, profile, color=colours[i % len(colours)], label=label)
        ax.fill_between(taus, band_lo, band_hi, color=colours[i % len(colours)], alpha=0.2, linewidth=0)
    ax.set_xlabel("normalised score tau")
    ax.set_ylabel("fraction of runs > tau")
    ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3)
    if pairs:
        ax = axes[3]
        for i, pair in enumerate(pairs):
            mid, lo, hi = results[pair]["P(X > Y)"]
            ax.plot([lo, hi], [i, i], linewidth=8, alpha=0.4, solid_capstyle="butt")
            ax.plot([mid], [i], "k|", markersize=14)
        ax.axvline(0.5, color="grey", linestyle="--", linewidth=1)
        ax.set_yticks(range(len(pairs)), [p.replace(" vs ", "\nvs ") for p in pairs], fontsize=7)
        ax.set_xlabel("P(X > Y)")
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(f"final {metric} over {len(envs)} envs ({', '.join(envs)}): 95 % stratified bootstrap CIs", fontsize=9)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out

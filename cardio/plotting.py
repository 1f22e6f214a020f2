"""Learning curves and aggregate scores from run dirs (``scripts/plot.py``, ``make plot runs=...``).

A run dir is any directory holding a ``progress.csv`` written by cardio (a multirun or sweep dir is searched for
them). Runs are grouped by their resolved ``config.yaml``: runs whose configs are equal once the seed and other
per-run keys (:data:`PER_RUN_KEYS`, paths inside the run dir) are set aside are the seeds of one configuration and
form one curve, labelled by the keys that differ between the groups (``agent.lr=0.001 (n=2)``).

Curves: each seed's metric is interpolated onto a common grid of env steps (no extrapolation past a seed's
last point); the line is the mean over seeds and the band a 95 % percentile bootstrap of that mean (seeds
resampled with replacement). Aggregate score: the interquartile mean (IQM) of the runs' final scores, with a
95 % bootstrap CI (Agarwal et al. 2021, "Deep RL at the Edge of the Statistical Precipice").

Across envs (``make plot aggregate=true``): :func:`score_matrices` normalises each run's final score per env and
stacks them per method, :func:`aggregate_across_envs` computes the rliable statistics of :mod:`cardio.aggregate`
with stratified bootstrap CIs, :func:`plot_across_envs` draws them (docs/analysis.md).
"""

from __future__ import annotations

import glob
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cardio import aggregate
from cardio.errors import UserError


class RunsNotFoundError(UserError, FileNotFoundError):
    """A path or glob given to plot holds no run dir (no ``progress.csv``)."""


class MetricNotLoggedError(UserError, KeyError):
    """The metric asked for is in no run's ``progress.csv``."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


class AggregateInputError(UserError, ValueError):
    """Runs that cannot be aggregated across envs as asked (a missing normalisation, unequal runs per env)."""


STEP_COLUMN = "time/total_timesteps"
"""x axis of SB3's progress.csv (env steps); cardio's files use their ``step`` column, present on every row."""


PER_RUN_KEYS = ("seed", "run_dir", "resume", "torch_threads", "logger")
"""Config keys (and whole subtrees) that never make a different experiment: the seed, where the run writes, what
it resumed from, CPU threads, and which sinks logged it. Any other value naming the run's own dir (e.g.
``runner.checkpoint_dir``) is left out too, whatever its key."""

ABSENT = "<absent>"
"""The value of a key one run's config has and another's lacks."""


@dataclass
class Run:
    """One run dir's metrics and the config it ran with."""

    path: Path
    """The run dir."""
    data: pd.DataFrame
    """``progress.csv`` as read by pandas (one row per log call, NaN where a call lacked a metric)."""
    config: dict[str, Any] = field(default_factory=dict)
    """The run's ``config.yaml`` flattened to dotted keys, per-run keys (:data:`PER_RUN_KEYS`) left out."""
    label: str = ""
    """Group label, set by :func:`group_runs`: the keys in which its group's config differs from the others."""


def find_runs(paths: Iterable[str | Path]) -> list[Path]:
    """Run dirs under ``paths``: each path is a run dir or a dir searched for them, or a shell-style glob
    (``outputs/multirun/*/*``) whose matching dirs are; files a glob matches (``multirun.yaml``) are skipped.

    Raises:
        FileNotFoundError: a path or glob matches nothing, or holds no ``progress.csv``.
    """
    found: list[Path] = []
    for raw in paths:
        pattern = any(c in str(raw) for c in "*?[")
        matches = [Path(p) for p in sorted(glob.glob(str(raw)))] if pattern else [Path(raw)]
        before = len(found)
        for path in matches:
            if (path / "progress.csv").is_file():
                found.append(path)
            elif path.is_dir():
                found += sorted(p.parent for p in path.rglob("progress.csv"))
            elif not pattern:
                raise RunsNotFoundError(f"{raw}: no such run dir")
        if pattern and len(found) == before:
            raise RunsNotFoundError(f"{raw}: matches no run dir (no progress.csv in any match)")
    if not found:
        raise RunsNotFoundError(f"no progress.csv under {list(map(str, paths))}; pass run dirs of scripts/train.py")
    return list(dict.fromkeys(found))


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """A nested mapping as ``{"agent.lr": 0.001, ...}``; lists stay values (``agent.hidden_sizes: [64, 64]``)."""
    if not isinstance(node, dict):
        return {prefix: node}
    flat: dict[str, Any] = {}
    for key, value in node.items():
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def run_config(path: Path) -> dict[str, Any]:
    """The run's resolved ``config.yaml`` flattened, without what differs per run and not per experiment.

    A run dir without ``config.yaml`` (not written by cardio) gets ``{"run": <its path>}``: a group of its own,
    never merged with another run on a guess.
    """
    import yaml

    config = path / "config.yaml"
    if not config.is_file():
        warnings.warn(f"{path} has no config.yaml: plotted as its own curve", stacklevel=2)
        return {"run": str(path)}
    flat = flatten(yaml.safe_load(config.read_text()) or {})
    own_dirs = {str(path), str(path.resolve())} | ({str(flat["run_dir"])} if flat.get("run_dir") else set())

    def per_run(key: str, value: Any) -> bool:
        if key.split(".", 1)[0] in PER_RUN_KEYS:
            return True
        # a path inside this run's own dir (checkpoint_dir, a sink's log dir) differs between seeds by design
        return isinstance(value, str) and any(value == d or value.startswith(d + "/") for d in own_dirs)

    return {k: v for k, v in flat.items() if not per_run(k, v)}


def load_runs(paths: Iterable[str | Path]) -> list[Run]:
    """Find and read every run under ``paths``."""
    return [Run(p, pd.read_csv(p / "progress.csv"), run_config(p)) for p in find_runs(paths)]


def _short(value: Any) -> str:
    """``0.001``, ``[64, 64]``, ``DQNConfig`` for a ``_target_`` path."""
    if isinstance(value, str) and "." in value and value.rsplit(".", 1)[-1][:1].isupper():
        return value.rsplit(".", 1)[-1]  # cardio.agents.dqn.DQNConfig -> DQNConfig
    return str(value)


def describe(config: dict[str, Any], varying: Sequence[str], collapse: bool = True) -> str:
    """``agent.lr=0.001 agent.gamma=0.9``: a config told by its ``varying`` keys.

    Args:
        config: a run's flattened config.
        varying: the keys to show.
        collapse: where a node's ``_target_`` itself varies (another agent, another schedule), name the node
            once by its class (``agent=PPOConfig``) instead of listing every key the two classes do not share.
    """
    swapped = [k[: -len("._target_")] for k in varying if collapse and k.endswith("._target_")]
    parts: list[str] = []
    for key in varying:
        node = next((n for n in swapped if key.startswith(n + ".")), None)
        part = (
            f"{node}={_short(config.get(node + '._target_', ABSENT))}" if node else f"{key}={config.get(key, ABSENT)}"
        )
        if part not in parts:
            parts.append(part)
    return " ".join(parts)


def default_label(config: dict[str, Any]) -> str:
    """``DQN CartPole-v1``: the label of runs that all share one config."""
    agent = _short(config.get("agent._target_", "")).removesuffix("Config")
    return " ".join(str(p) for p in (agent, config.get("env.id", "")) if p) or str(config.get("run", "runs"))


def _labels(runs: Sequence[Run], ignore: Sequence[str] = (), keep: Sequence[str] = ()) -> list[str] | None:
    """Each run's config told by the keys that vary between runs (``ignore``d keys aside, ``keep`` never
    ignored); ``None`` when nothing varies."""

    def kept(config: dict[str, Any]) -> dict[str, Any]:
        def dropped(k: str) -> bool:
            return k not in keep and any(k == i or k.startswith(i + ".") for i in ignore)

        return {k: v for k, v in config.items() if not dropped(k)}

    configs = [kept(r.config) for r in runs]
    keys = list(dict.fromkeys(k for c in configs for k in c))  # first-seen order: config.yaml's order
    # lists are unhashable and 1 == 1.0 == True in Python: compare values by their repr
    varying = [k for k in keys if len({repr(c.get(k, ABSENT)) for c in configs}) > 1]
    if not varying:
        return None
    if "env.id" in varying:  # keys fixed by the env (its rl-zoo numbers) are told by naming the env alone
        varying = [k for k in varying if k == "env.id" or not _fixed_by(configs, "env.id", k)]
    labels = [describe(c, varying) for c in configs]
    distinct = {tuple(repr(c.get(k, ABSENT)) for k in varying) for c in configs}
    if len(set(labels)) < len(distinct):  # naming a swapped class hid a difference: list every key instead
        labels = [describe(c, varying, collapse=False) for c in configs]
    return labels


def _fixed_by(configs: Sequence[dict[str, Any]], key: str, other: str) -> bool:
    """Whether each value of ``key`` comes with a single value of ``other`` (``other`` is a function of it)."""
    seen: dict[str, str] = {}
    for c in configs:
        k, v = repr(c.get(key, ABSENT)), repr(c.get(other, ABSENT))
        if seen.setdefault(k, v) != v:
            return False
    return True


def group_runs(runs: Sequence[Run], ignore: Sequence[str] = ()) -> dict[str, list[Run]]:
    """Runs whose configs are equal (per-run keys aside) form one group: the seeds of one configuration.

    Each group's label lists the keys whose value is not the same in every run (``agent.lr=0.001``), so two
    configurations never share a curve and the legend says what separates them. Sets each run's ``label``.

    Args:
        runs: from :func:`load_runs`.
        ignore: more keys (or subtrees, ``runner.log_interval``) whose differences do not split groups.
    """

    labels = _labels(runs, ignore)
    groups: dict[str, list[Run]] = {}
    for i, run in enumerate(runs):
        run.label = labels[i] if labels is not None else default_label(run.config)
        groups.setdefault(run.label, []).append(run)
    return groups


def curve(data: pd.DataFrame, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """``(env steps, values)`` of ``metric``, rows lacking it dropped.

    Raises:
        KeyError: ``metric`` is not a column (the message lists the ones there are).
    """
    if metric not in data.columns:
        raise MetricNotLoggedError(
            f"metric {metric!r} not logged; columns: {sorted(c for c in data.columns if '/' in c)}"
        )
    x_col = "step" if "step" in data.columns else STEP_COLUMN  # cardio's eval rows have only `step`
    rows = data[[x_col, metric]].dropna() if x_col != metric else data[[metric]].dropna()
    rows = rows.groupby(x_col, as_index=False).last()  # one value per step
    return rows[x_col].to_numpy(dtype=float), rows[metric].to_numpy(dtype=float)


def read_sb3(path: str | Path, metric: str = "rollout/ep_rew_mean", window: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """A curve from another library's CSV: SB3's ``monitor.csv`` (episodes: ``r, l, t``; returns smoothed over
    ``window`` episodes like ``rollout/ep_rew_mean``) or a ``progress.csv`` in SB3's logger format.

    Args:
        path: the CSV file.
        metric: column to read from a progress file (falls back to ``rollout/ep_rew_mean``).
        window: episodes in the moving average of a monitor file.
    """
    path = Path(path)
    first = path.read_text().split("\n", 1)[0]
    if first.startswith("#"):  # monitor.csv: a JSON header line, then r,l,t per episode
        episodes = pd.read_csv(path, skiprows=1)
        x = episodes["l"].cumsum().to_numpy(dtype=float)
        y = episodes["r"].rolling(window, min_periods=1).mean().to_numpy(dtype=float)
        return x, y
    data = pd.read_csv(path)
    return curve(data, metric if metric in data.columns else "rollout/ep_rew_mean")


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


def final_score(run: Run, metric: str) -> float:
    """The last logged value of ``metric`` in a run (NaN if never logged)."""
    _, y = curve(run.data, metric)
    return float(y[-1]) if len(y) else float("nan")


def pick_metric(runs: Sequence[Run], metric: str | None) -> str:
    """``metric``, or by default ``eval/mean_reward`` when every run has it, else ``rollout/ep_rew_mean``."""
    if metric is not None:
        return metric
    if all("eval/mean_reward" in r.data.columns for r in runs):
        return "eval/mean_reward"
    return "rollout/ep_rew_mean"


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


def method_labels(runs: Sequence[Run], by: Sequence[str] | None = None) -> list[str]:
    """Which method each run is, apart from its env: the ``by`` keys' values, or by default the keys that
    vary within some env (keys fixed per env, such as the rl-zoo numbers of each env, are the env's, not the
    method's; the agent class always counts)."""
    if by:
        return [" ".join(f"{k}={_short(r.config.get(k, ABSENT))}" for k in by) for r in runs]
    configs = [r.config for r in runs]
    keys = list(dict.fromkeys(k for c in configs for k in c))
    per_env = [k for k in keys if _fixed_by(configs, "env.id", k)]
    labels = _labels(runs, ignore=["env", *per_env], keep=["agent._target_"])
    if labels is None:
        agent = {_short(r.config.get("agent._target_", "")).removesuffix("Config") for r in runs}
        return [" ".join(sorted(agent)) or "runs"] * len(runs)
    return labels


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

"""Run dirs as data: finding the runs under a path, reading their metrics and configs, and naming their groups.

A run dir is any directory holding a ``progress.csv`` written by cardio (a multirun or sweep dir is searched for
them). Runs are grouped by their resolved ``config.yaml``: runs whose configs are equal once the seed and other
per-run keys (:data:`PER_RUN_KEYS`, paths inside the run dir) are set aside are the seeds of one configuration and
form one curve, labelled by the keys that differ between the groups (``agent.lr=0.001 (n=2)``). ``cardio/plotting.py``
draws them.
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
